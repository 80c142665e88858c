package courier

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/idlog/idlog/follower"
	"github.com/idlog/idlog/migrations"
)

// Name is the courier's follower name: the lease that gives it one owner across replicas.
const Name = "courier"

// Defaults of Options.
const (
	DefaultMaxAttempts = 10
	DefaultRetryMin    = 2 * time.Second
	DefaultRetryMax    = 10 * time.Minute
	DefaultPoll        = 500 * time.Millisecond
	DefaultBatch       = 100
)

// Options configure a Courier.
type Options struct {
	// DB is the event store's database (PostgreSQL or SQLite), migrated to 00140 or later.
	DB      *sql.DB
	Dialect migrations.Dialect
	// Outbox opens the sealed payloads (the same secret key that sealed them).
	Outbox Outbox
	// Templates render the messages.
	Templates *Templates
	// Email and SMS deliver each channel. A nil SMS sender leaves SMS messages queued.
	Email, SMS Sender
	// Lease, when set, lets one process at a time deliver (follower name Name).
	Lease follower.Lease
	// MaxAttempts: after this many failed sends a message is dead. 0 means DefaultMaxAttempts.
	MaxAttempts int
	// RetryMin and RetryMax bound the wait before a failed message is tried again; it doubles
	// after each failure. 0 means the defaults.
	RetryMin, RetryMax time.Duration
	// Poll is how often the queue is read when idle; Wake makes it sooner. 0 means DefaultPoll.
	Poll time.Duration
	// Batch is how many due messages one pass reads. 0 means DefaultBatch.
	Batch int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives failures, never payloads. Nil discards.
	Logger *slog.Logger
	// Metrics, when set, receives idlog_courier_* metrics.
	Metrics prometheus.Registerer
}

// Courier delivers the outbox. Run runs it.
type Courier struct {
	o    Options
	q    queue
	wake chan struct{}
	m    metrics
}

type metrics struct {
	sent, failed, dead, expired *prometheus.CounterVec
}

// New checks o and returns a courier that is not running. Nil DB, templates or e-mail sender are
// wiring mistakes and panic.
func New(o Options) (*Courier, error) {
	if o.DB == nil || o.Templates == nil || o.Email == nil || o.Outbox.Sealer == nil {
		panic("courier: New needs a database, templates, an e-mail sender and the outbox sealer")
	}
	switch {
	case o.Dialect != migrations.Postgres && o.Dialect != migrations.SQLite:
		return nil, fmt.Errorf("courier: dialect %q (want postgres or sqlite)", o.Dialect)
	case o.MaxAttempts < 0 || o.Batch < 0 || o.RetryMin < 0 || o.RetryMax < 0 || o.Poll < 0:
		return nil, fmt.Errorf("courier: max attempts (%d), batch (%d), retry (%v, %v) and poll (%v) cannot be negative",
			o.MaxAttempts, o.Batch, o.RetryMin, o.RetryMax, o.Poll)
	}
	if o.MaxAttempts == 0 {
		o.MaxAttempts = DefaultMaxAttempts
	}
	if o.RetryMin == 0 {
		o.RetryMin = DefaultRetryMin
	}
	if o.RetryMax == 0 {
		o.RetryMax = DefaultRetryMax
	}
	if o.RetryMin > o.RetryMax {
		return nil, fmt.Errorf("courier: retry min (%v) cannot be higher than retry max (%v)", o.RetryMin, o.RetryMax)
	}
	if o.Poll == 0 {
		o.Poll = DefaultPoll
	}
	if o.Batch == 0 {
		o.Batch = DefaultBatch
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Courier{o: o, q: queue{db: o.DB, dialect: o.Dialect}, wake: make(chan struct{}, 1)}
	counter := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: "idlog_courier_" + name, Help: help}, []string{"channel"})
	}
	c.m = metrics{
		sent:    counter("sent_total", "Messages delivered (accepted by their sender)."),
		failed:  counter("failed_total", "Failed delivery attempts."),
		dead:    counter("dead_total", "Messages given up after the last attempt."),
		expired: counter("expired_total", "Messages dropped at their expiry, delivered or not."),
	}
	if o.Metrics != nil {
		age := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "idlog_courier_queue_age_seconds",
			Help: "Age of the oldest message waiting for delivery (0 when none)."}, func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			t, ok, err := c.q.oldest(ctx)
			if err != nil || !ok {
				return 0
			}
			return c.o.Now().Sub(t).Seconds()
		})
		for _, col := range []prometheus.Collector{c.m.sent, c.m.failed, c.m.dead, c.m.expired, age} {
			if err := o.Metrics.Register(col); err != nil {
				return nil, fmt.Errorf("courier: metrics: %w", err)
			}
		}
	}
	return c, nil
}

// Wake makes a running courier read the queue now (commands queued a message).
func (c *Courier) Wake() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Run delivers until ctx ends, then returns nil. With a Lease it delivers only while this process
// owns it. Failures do not end it: it logs them and goes on.
func (c *Courier) Run(ctx context.Context) error {
	if c.o.Lease == nil {
		c.loop(ctx)
		return nil
	}
	for ctx.Err() == nil {
		h, err := c.o.Lease.Acquire(ctx, Name, nil)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			c.o.Logger.Warn("courier: could not acquire its lease; retrying", "error", err)
			c.pause(ctx, c.o.Poll)
			continue
		}
		c.loop(follower.WithToken(h.Context, Name, h.Token))
		h.Release()
	}
	return nil
}

func (c *Courier) loop(ctx context.Context) {
	for ctx.Err() == nil {
		n, err := c.DeliverDue(ctx)
		if errors.Is(err, follower.ErrLeaseLost) {
			return
		}
		if err != nil && ctx.Err() == nil {
			c.o.Logger.Warn("courier: pass failed", "error", err)
		}
		if n == c.o.Batch && err == nil {
			continue // more are due
		}
		c.pause(ctx, c.o.Poll)
	}
}

func (c *Courier) pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	case <-c.wake:
	}
}

// DeliverDue makes one pass: it drops expired messages and tries the due ones once. It returns
// how many it tried. Run calls it; tests and one-shot commands may too.
func (c *Courier) DeliverDue(ctx context.Context) (int, error) {
	now := c.o.Now()
	if n, err := c.q.expire(ctx, now); err != nil {
		return 0, fmt.Errorf("courier: expire: %w", err)
	} else if n > 0 {
		c.m.expired.WithLabelValues("any").Add(float64(n))
	}
	rows, err := c.q.due(ctx, now, c.o.Batch)
	if err != nil {
		return 0, fmt.Errorf("courier: read the queue: %w", err)
	}
	// The sent messages are deleted together, every sentChunk and at the end: a crash in between
	// sends them again, with the same ids, which is what at-least-once allows.
	var sent []row
	flush := func() error {
		ids := make([]uuid.UUID, len(sent))
		for i, r := range sent {
			ids[i] = r.ID
		}
		if err := c.q.delivered(ctx, ids); err != nil {
			// Sent but still queued: they are sent again, with the same ids, on the next pass.
			return fmt.Errorf("courier: delete %d delivered messages: %w", len(ids), err)
		}
		for _, r := range sent {
			c.m.sent.WithLabelValues(r.Channel).Inc()
		}
		sent = sent[:0]
		return nil
	}
	for i, r := range rows {
		ok, err := c.deliver(ctx, r)
		if err == nil && ok {
			sent = append(sent, r)
			if len(sent) < sentChunk {
				continue
			}
		}
		if ferr := flush(); ferr != nil || err != nil {
			return i, errors.Join(err, ferr)
		}
	}
	return len(rows), flush()
}

// sentChunk is how many sent messages are deleted in one transaction.
const sentChunk = 50

// deliver tries r once and reports whether it was sent. A failure to send is recorded on the row;
// only a failure to record it is returned.
func (c *Courier) deliver(ctx context.Context, r row) (bool, error) {
	sendErr := c.send(ctx, r)
	if sendErr == nil {
		return true, nil
	}
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	attempts := r.Attempts + 1
	dead := attempts >= c.o.MaxAttempts
	wait := c.o.RetryMin << min(attempts-1, 30)
	if wait > c.o.RetryMax || wait <= 0 {
		wait = c.o.RetryMax
	}
	c.m.failed.WithLabelValues(r.Channel).Inc()
	level := slog.LevelWarn
	if dead {
		c.m.dead.WithLabelValues(r.Channel).Inc()
		level = slog.LevelError
	}
	c.o.Logger.LogAttrs(ctx, level, "courier: delivery failed", slog.String("id", r.ID.String()), slog.String("kind", r.Kind),
		slog.String("channel", r.Channel), slog.Int("attempts", attempts), slog.Bool("dead", dead), slog.Any("error", sendErr))
	reason := sendErr.Error()
	if len(reason) > 500 {
		reason = reason[:500]
	}
	if err := c.q.failed(ctx, r.ID, attempts, c.o.Now().Add(wait), dead, reason); err != nil {
		return false, fmt.Errorf("courier: record failure of %s: %w", r.ID, err)
	}
	return false, nil
}

// errNoSender: no sender for the message's channel is configured.
var errNoSender = errors.New("courier: no sender for this channel")

func (c *Courier) send(ctx context.Context, r row) error {
	p, err := c.o.Outbox.open(r.ID, r.Sealed)
	if err != nil {
		return err
	}
	rendered, err := c.o.Templates.Render(r.Kind, p)
	if err != nil {
		return err
	}
	e := Envelope{ID: r.ID, Kind: r.Kind, Channel: r.Channel, UID: r.UID, To: p.To, Token: p.Token, CreatedAt: r.CreatedAt, Rendered: rendered}
	var s Sender
	switch r.Channel {
	case ChannelEmail:
		s = c.o.Email
	case ChannelSMS:
		s = c.o.SMS
	}
	if s == nil {
		return fmt.Errorf("%w: %q", errNoSender, r.Channel)
	}
	if err := s.Send(ctx, e); err != nil {
		return err
	}
	// Never the content; the recipient under "to", personal data that logprivacy drops.
	c.o.Logger.LogAttrs(ctx, slog.LevelInfo, "message delivered", slog.String("id", r.ID.String()), slog.String("kind", r.Kind),
		slog.String("channel", r.Channel), slog.String("uid", r.UID), slog.String("to", p.To))
	return nil
}

// Queue lists the outbox, oldest first, up to limit messages: ids, kinds, attempts and errors,
// never a recipient or a payload.
func Queue(ctx context.Context, db *sql.DB, dialect migrations.Dialect, limit int) ([]Queued, error) {
	q := queue{db: db, dialect: dialect}
	rows, err := q.list(ctx, limit)
	if err != nil {
		return nil, fmt.Errorf("courier: list the queue: %w", err)
	}
	return queuedOf(rows), nil
}

// queuedOf is what the admin route shows of rows.
func queuedOf(rows []row) []Queued {
	out := make([]Queued, len(rows))
	for i, r := range rows {
		out[i] = Queued{ID: r.ID.String(), Kind: r.Kind, Channel: r.Channel, UID: r.UID, CreatedAt: r.CreatedAt,
			ExpiresAt: r.ExpiresAt, NextAttemptAt: r.NextAt, Attempts: r.Attempts, LastError: r.LastError, Dead: r.Dead}
	}
	return out
}

// Lister lists the outbox of a database, and retries its messages; the admin routes use it.
type Lister struct {
	DB      *sql.DB
	Dialect migrations.Dialect
	// Wake, when set, is called after a Retry: the courier of this process reads the queue
	// now (Courier.Wake). Another replica's finds the message at its next poll.
	Wake func()
}

// Queue returns up to limit messages, oldest first, without their payload.
func (l Lister) Queue(ctx context.Context, limit int) ([]Queued, error) {
	return Queue(ctx, l.DB, l.Dialect, limit)
}

// Page returns one page of the queue and the number of messages in it (QueuePage).
func (l Lister) Page(ctx context.Context, page, limit int) ([]Queued, int, error) {
	return QueuePage(ctx, l.DB, l.Dialect, page, limit)
}

// Retry makes the message due now (see Retry) and wakes the courier.
func (l Lister) Retry(ctx context.Context, id string) error {
	if err := Retry(ctx, l.DB, l.Dialect, id, time.Now()); err != nil {
		return err
	}
	if l.Wake != nil {
		l.Wake()
	}
	return nil
}
