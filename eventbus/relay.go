package eventbus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/idlog/idlog/eventstore"
)

// DefaultCheckpointName is the name under which the relay keeps its position in the store.
const DefaultCheckpointName = "nats-relay"

// readAhead is how many encoded events may wait for their publish: a few pages of a store's
// reads (a few MB at most), so the next page is fetched while the last one is published.
const readAhead = 4096

// lagCountLimit bounds how many events one lag measurement counts, so that measuring a long
// outage's backlog stays cheap; the metric then reads "at least this many".
const lagCountLimit = 10000

// RelayOptions configure NewRelay.
type RelayOptions struct {
	// Store is the log the relay follows. Required.
	Store eventstore.Store
	// Checkpoints keeps the relay's position, usually in the same database as Store. Required.
	Checkpoints eventstore.Checkpoints
	// Client is the NATS connection. Required.
	Client *Client
	// CheckpointName is the relay's checkpoint. Default DefaultCheckpointName.
	CheckpointName string
	// Source is the CloudEvents source of the messages. Default DefaultSource.
	Source string
	// MaxAge and MaxBytes limit what IDLOG_EVENTS keeps (0: no limit, keep every event).
	MaxAge   time.Duration
	MaxBytes int64
	// DuplicateWindow is how long JetStream remembers event ids to drop a republished event.
	// Production wants at least 2 minutes. Default 2 minutes; at most MaxAge when MaxAge is set.
	DuplicateWindow time.Duration
	// Window bounds the publishes awaiting their acknowledgement. Default 256.
	Window int
	// AckTimeout is how long a publish may wait for its acknowledgement before the relay
	// starts over from its checkpoint. Default 10s.
	AckTimeout time.Duration
	// CheckpointInterval is how often the position is saved while it moves. Default 200ms.
	CheckpointInterval time.Duration
	// LagInterval is how often the lag is measured in the store. Default 5s.
	LagInterval time.Duration
	// MinBackoff and MaxBackoff bound the pause before starting over after a failure, which
	// doubles from the one to the other. Defaults 100ms and 30s.
	MinBackoff, MaxBackoff time.Duration
	// Logger receives failures and recoveries. Nil discards them.
	Logger *slog.Logger
}

func (o RelayOptions) validate() (RelayOptions, error) {
	switch {
	case o.Store == nil || o.Checkpoints == nil || o.Client == nil:
		return o, fmt.Errorf("%w: Store, Checkpoints and Client are required", ErrInvalidOptions)
	case o.MaxAge < 0 || o.MaxBytes < 0 || o.DuplicateWindow < 0:
		return o, fmt.Errorf("%w: MaxAge (%v), MaxBytes (%d) and DuplicateWindow (%v) cannot be negative", ErrInvalidOptions, o.MaxAge, o.MaxBytes, o.DuplicateWindow)
	case o.Window < 0 || o.AckTimeout < 0 || o.CheckpointInterval < 0 || o.LagInterval < 0 || o.MinBackoff < 0 || o.MaxBackoff < 0:
		return o, fmt.Errorf("%w: Window, AckTimeout, CheckpointInterval, LagInterval and the backoffs cannot be negative", ErrInvalidOptions)
	}
	if o.CheckpointName == "" {
		o.CheckpointName = DefaultCheckpointName
	}
	if o.Source == "" {
		o.Source = DefaultSource
	}
	if o.DuplicateWindow == 0 {
		o.DuplicateWindow = 2 * time.Minute
		if o.MaxAge > 0 {
			o.DuplicateWindow = min(o.DuplicateWindow, o.MaxAge)
		}
	}
	if o.MaxAge > 0 && o.DuplicateWindow > o.MaxAge {
		return o, fmt.Errorf("%w: DuplicateWindow (%v) cannot exceed MaxAge (%v)", ErrInvalidOptions, o.DuplicateWindow, o.MaxAge)
	}
	if o.Window == 0 {
		o.Window = 256
	}
	if o.AckTimeout == 0 {
		o.AckTimeout = 10 * time.Second
	}
	if o.CheckpointInterval == 0 {
		o.CheckpointInterval = 200 * time.Millisecond
	}
	if o.LagInterval == 0 {
		o.LagInterval = 5 * time.Second
	}
	if o.MinBackoff == 0 {
		o.MinBackoff = 100 * time.Millisecond
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = 30 * time.Second
	}
	if o.MaxBackoff < o.MinBackoff {
		return o, fmt.Errorf("%w: MaxBackoff (%v) cannot be lower than MinBackoff (%v)", ErrInvalidOptions, o.MaxBackoff, o.MinBackoff)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

// Relay publishes every event of the store's global log to IDLOG_EVENTS, in global order, each
// exactly once. It follows the log from its checkpoint, keeps up to Window publishes in flight,
// and saves as its checkpoint the highest position that JetStream acknowledged together with
// every position below it. When NATS fails it pauses, then starts over from that checkpoint; what
// it republishes, JetStream drops by event id.
//
// A Relay is a prometheus.Collector of its lag, its counts and the connection's state.
type Relay struct {
	opts RelayOptions
	log  *slog.Logger

	running    atomic.Bool
	js         jetstream.JetStream // used by Run's goroutine only
	jsConn     *nats.Conn
	position   atomic.Uint64 // acknowledged, with everything below it
	published  atomic.Uint64 // stored by JetStream
	duplicates atomic.Uint64 // dropped by JetStream as already stored
	failures   atomic.Uint64 // runs that ended in an error

	mu         sync.Mutex
	err        error // why the relay is not publishing, nil while it is
	lagEvents  int
	lagSeconds float64
	lagKnown   bool

	descs relayDescs
}

// NewRelay checks o and returns a relay. Run starts it.
func NewRelay(o RelayOptions) (*Relay, error) {
	o, err := o.validate()
	if err != nil {
		return nil, err
	}
	return &Relay{opts: o, log: o.Logger, descs: newRelayDescs()}, nil
}

// RelayStatus is a snapshot of the relay.
type RelayStatus struct {
	// Position is the highest global position acknowledged by JetStream with all below it.
	Position uint64
	// Published counts events JetStream stored; Duplicates those it dropped as already stored.
	Published, Duplicates uint64
	// LagEvents counts stored events not yet acknowledged (at most 10000 are counted);
	// LagSeconds is the age of the oldest. Both are measured every LagInterval.
	LagEvents  int
	LagSeconds float64
	// Connected: NATS answers now.
	Connected bool
	// Err says why the relay is not publishing; nil while it is.
	Err error
}

// Status returns the relay's state now.
func (r *Relay) Status() RelayStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	return RelayStatus{
		Position:   r.position.Load(),
		Published:  r.published.Load(),
		Duplicates: r.duplicates.Load(),
		LagEvents:  r.lagEvents,
		LagSeconds: r.lagSeconds,
		Connected:  r.opts.Client.connected(),
		Err:        r.err,
	}
}

// Check is a readiness check: nil while NATS answers and the relay publishes, else why not.
func (r *Relay) Check(ctx context.Context) error {
	if err := r.opts.Client.Check(ctx); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return fmt.Errorf("eventbus: relay paused: %w", r.err)
	}
	return nil
}

func (r *Relay) setErr(err error) {
	r.mu.Lock()
	r.err = err
	r.mu.Unlock()
}

// Run relays until ctx ends, then saves its checkpoint and returns nil. Failures do not end it:
// it logs them, pauses, and starts over from its checkpoint. A Relay runs once at a time.
func (r *Relay) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return errors.New("eventbus: relay is already running")
	}
	defer r.running.Store(false)

	// Known before NATS answers, so the lag is measured from the right place.
	if pos, err := r.opts.Checkpoints.Checkpoint(ctx, r.opts.CheckpointName); err == nil {
		r.position.Store(max(pos, r.position.Load()))
	}
	var wg sync.WaitGroup
	bg, stopBG := context.WithCancel(ctx)
	saved := make(chan uint64, 1)
	wg.Add(2)
	go func() { defer wg.Done(); saved <- r.saveCheckpoints(bg) }()
	go func() { defer wg.Done(); r.measureLag(bg) }()

	for attempt := 0; ; {
		progressed, err := r.runOnce(ctx)
		if ctx.Err() != nil {
			break
		}
		if progressed {
			attempt = 0
		}
		r.failures.Add(1)
		r.setErr(err)
		wait := backoff(r.opts.MinBackoff, r.opts.MaxBackoff, attempt)
		attempt++
		r.log.Warn("event relay paused", "error", err, "position", r.position.Load(), "retry_in", wait.Round(time.Millisecond))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-t.C:
		case <-r.opts.Client.changed(): // NATS is back: no need to wait out the pause
		}
		t.Stop()
		if ctx.Err() != nil {
			break
		}
	}
	stopBG()
	wg.Wait()
	// The last position, saved outside the ended context so a stop keeps what was acknowledged.
	if pos := r.position.Load(); pos > <-saved {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := r.opts.Checkpoints.SetCheckpoint(sctx, r.opts.CheckpointName, pos); err != nil {
			r.log.Error("event relay: save checkpoint", "position", pos, "error", err)
		}
	}
	r.log.Debug("event relay stopped", "position", r.position.Load())
	return nil
}

// outgoing is an event encoded for publishing.
type outgoing struct {
	pos      uint64
	id, subj string
	data     []byte
}

// inflight is a publish awaiting its acknowledgement.
type inflight struct {
	pos uint64
	ack jetstream.PubAckFuture
}

// runOnce relays from the checkpoint until ctx ends or something fails, and reports whether the
// acknowledged position moved.
func (r *Relay) runOnce(ctx context.Context) (progressed bool, err error) {
	nc, err := r.opts.Client.Conn(ctx)
	if err != nil {
		return false, err
	}
	if !nc.IsConnected() {
		return false, r.opts.Client.Check(ctx)
	}
	// One JetStream handle per connection: each holds a reply subscription for acknowledgements.
	if r.js == nil || r.jsConn != nc {
		js, err := jetstream.New(nc,
			// The window: a publish waits (up to AckTimeout) while Window others await their
			// acknowledgement. The client itself wakes it when an acknowledgement arrives.
			jetstream.WithPublishAsyncMaxPending(r.opts.Window),
			jetstream.WithPublishAsyncTimeout(r.opts.AckTimeout))
		if err != nil {
			return false, fmt.Errorf("eventbus: %w", err)
		}
		r.js, r.jsConn = js, nc
	}
	js := r.js
	stream, err := ensureStream(ctx, js, jetstream.StreamConfig{
		Name:        EventsStream,
		Description: "idlog's event log, in global order; one CloudEvents JSON message per event",
		Subjects:    []string{EventsSubjects},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Discard:     jetstream.DiscardOld,
		MaxAge:      r.opts.MaxAge,
		MaxBytes:    maxBytes(r.opts.MaxBytes),
		MaxMsgs:     -1,
		Duplicates:  r.opts.DuplicateWindow,
	})
	if err != nil {
		return false, err
	}
	from, err := r.startPosition(ctx, stream)
	if err != nil {
		return false, err
	}
	start := from
	r.position.Store(from)
	r.setErr(nil)
	r.log.Debug("event relay publishing", "from", from)
	defer func() { progressed = r.position.Load() > start }()

	// sub stops reading the log; acks stops waiting for acknowledgements. A failure stops both at
	// once; a stop (ctx) ends the reading at once and gives pending acknowledgements a moment, so
	// the checkpoint keeps what JetStream has already stored.
	sub, stopSub := context.WithCancelCause(ctx)
	defer stopSub(nil)
	acks, stopAcks := context.WithCancelCause(context.WithoutCancel(ctx))
	defer stopAcks(nil)
	fail := func(err error) {
		stopAcks(err)
		stopSub(err)
	}
	grace := context.AfterFunc(ctx, func() { time.AfterFunc(time.Second, func() { stopAcks(nil) }) })
	defer grace()

	// Room for more than the window, so that the publisher never waits for the bookkeeping.
	pending := make(chan inflight, 4*r.opts.Window)
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		r.collect(acks, pending, fail)
	}()

	// Reading and encoding run ahead of publishing, so the store is read while the publisher
	// waits for room in the window, and the publisher has events while the next page is read.
	encoded := make(chan outgoing, readAhead)
	go func() {
		defer close(encoded)
		for e, err := range r.opts.Store.Subscribe(sub, from, eventstore.Filter{}) {
			if err != nil {
				if sub.Err() == nil {
					fail(fmt.Errorf("eventbus: read the event log after position %d: %w", from, err))
				}
				return
			}
			o := outgoing{
				pos:  e.GlobalPosition,
				id:   e.ID.String(),
				subj: Subject(e),
				data: appendCloudEvent(make([]byte, 0, 512+len(e.Data)), r.opts.Client.opts.Signer, r.opts.Source, e),
			}
			select {
			case encoded <- o:
			case <-sub.Done():
				return
			}
		}
	}()

	var prevID string
	for o := range encoded {
		msg := &nats.Msg{
			Subject: o.subj,
			Data:    o.data,
			Header:  nats.Header{headerMsgID: {o.id}, headerExpectedStream: {EventsStream}},
		}
		// Chained to the previous message of this run: if that one is lost, this one is
		// refused too, and the run starts over before anything can be stored out of order.
		if prevID != "" {
			msg.Header[headerExpectedLastID] = []string{prevID}
		}
		ack, err := js.PublishMsgAsync(msg)
		// A full window that stays full past the client's stall wait publishes nothing: try
		// again. Acknowledgements or their timeouts free it in the end.
		for errors.Is(err, jetstream.ErrTooManyStalledMsgs) && sub.Err() == nil {
			ack, err = js.PublishMsgAsync(msg)
		}
		if err != nil {
			fail(fmt.Errorf("eventbus: publish event at position %d: %w", o.pos, err))
			break
		}
		prevID = o.id
		select {
		case pending <- inflight{pos: o.pos, ack: ack}:
		case <-sub.Done():
		}
		if sub.Err() != nil {
			break
		}
	}
	stopSub(nil) // the reader may be blocked on a full channel
	for range encoded {
	}
	close(pending)
	<-collected
	if cause := context.Cause(acks); cause != nil && !errors.Is(cause, context.Canceled) {
		return progressed, cause
	}
	if cause := context.Cause(sub); cause != nil && !errors.Is(cause, context.Canceled) {
		return progressed, cause
	}
	if ctx.Err() == nil {
		return progressed, errors.New("eventbus: the event log subscription ended")
	}
	return progressed, nil
}

// collect waits for the acknowledgements in publish order and moves the position past each.
func (r *Relay) collect(ctx context.Context, pending <-chan inflight, fail func(error)) {
	for f := range pending {
		select {
		case ack := <-f.ack.Ok():
			if ack.Duplicate {
				r.duplicates.Add(1)
			} else {
				r.published.Add(1)
			}
			r.position.Store(f.pos)
		case err := <-f.ack.Err():
			fail(fmt.Errorf("eventbus: JetStream did not store the event at position %d: %w", f.pos, err))
			return
		case <-ctx.Done():
			return
		}
	}
}

// startPosition is where a run starts: the checkpoint, or the last position this process knows
// acknowledged if the checkpoint is behind it. When the stream already holds events past that
// position (the relay stopped after publishing, before saving) it republishes them for JetStream
// to drop, unless JetStream may have forgotten their ids already: then it starts after them.
func (r *Relay) startPosition(ctx context.Context, stream jetstream.Stream) (uint64, error) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	from, err := r.opts.Checkpoints.Checkpoint(cctx, r.opts.CheckpointName)
	if err != nil {
		return 0, fmt.Errorf("eventbus: read the relay checkpoint %q: %w", r.opts.CheckpointName, err)
	}
	from = max(from, r.position.Load())
	info := stream.CachedInfo()
	if info.State.LastSeq == 0 {
		return from, nil
	}
	last, err := stream.GetMsg(cctx, info.State.LastSeq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return from, nil // expired or deleted
	}
	if err != nil {
		return 0, fmt.Errorf("eventbus: read the last message of %s: %w", info.Config.Name, err)
	}
	var body struct {
		Position string `json:"idlogposition"`
	}
	if json.Unmarshal(last.Data, &body) != nil {
		return from, nil // not the relay's: nothing to learn from it
	}
	lastPos, err := strconv.ParseUint(body.Position, 10, 64)
	if err != nil || lastPos <= from {
		return from, nil
	}
	// Only an event of this very log counts: a stream kept across a fresh database holds
	// positions that mean nothing here.
	if ours, err := r.holds(cctx, lastPos, last.Header.Get(headerMsgID)); err != nil || !ours {
		if err == nil {
			r.log.Warn("event relay: the stream's last message is no event of this event log; publishing from the checkpoint",
				"stream", info.Config.Name, "stream_position", lastPos, "checkpoint", from)
		}
		return from, err
	}
	// The ids of a run are all published within moments of its last message, so its age tells
	// whether JetStream still remembers them.
	if age := time.Since(last.Time); age >= info.Config.Duplicates*3/4 {
		r.log.Info("event relay: the stream already holds events past the checkpoint, published too long ago to be deduplicated; starting after them",
			"checkpoint", from, "stream_position", lastPos, "age", age.Round(time.Second))
		return lastPos, nil
	}
	return from, nil
}

// holds reports whether the event at pos in the store has this id.
func (r *Relay) holds(ctx context.Context, pos uint64, id string) (bool, error) {
	for e, err := range r.opts.Store.ReadAll(ctx, pos-1, eventstore.Filter{}) {
		if err != nil {
			return false, fmt.Errorf("eventbus: read the event at position %d: %w", pos, err)
		}
		return e.GlobalPosition == pos && e.ID.String() == id, nil
	}
	return false, nil
}

// saveCheckpoints saves the position whenever it moved, every CheckpointInterval, until ctx
// ends, and returns the last position saved.
func (r *Relay) saveCheckpoints(ctx context.Context) uint64 {
	var saved uint64
	t := time.NewTicker(r.opts.CheckpointInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return saved
		case <-t.C:
		}
		pos := r.position.Load()
		if pos <= saved {
			continue
		}
		if err := r.opts.Checkpoints.SetCheckpoint(ctx, r.opts.CheckpointName, pos); err != nil {
			if ctx.Err() == nil {
				r.log.Warn("event relay: save checkpoint", "position", pos, "error", err)
			}
			continue
		}
		saved = pos
	}
}

// measureLag counts, every LagInterval, the stored events past the acknowledged position, and
// the age of the oldest.
func (r *Relay) measureLag(ctx context.Context) {
	t := time.NewTicker(r.opts.LagInterval)
	defer t.Stop()
	for {
		// After an interval, not at once: a relay starting behind reads its backlog first.
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var (
			n      int
			oldest time.Time
			failed error
		)
		for e, err := range r.opts.Store.ReadAll(ctx, r.position.Load(), eventstore.Filter{}) {
			if err != nil {
				failed = err
				break
			}
			if n == 0 {
				oldest = e.RecordedAt
			}
			if n++; n >= lagCountLimit {
				break
			}
		}
		if ctx.Err() != nil {
			return
		}
		if failed != nil {
			r.log.Debug("event relay: measure lag", "error", failed)
		} else {
			r.mu.Lock()
			r.lagEvents, r.lagSeconds, r.lagKnown = n, 0, true
			if n > 0 {
				r.lagSeconds = max(0, time.Since(oldest).Seconds())
			}
			r.mu.Unlock()
		}
	}
}

type relayDescs struct {
	lagEvents, lagSeconds, position, published, duplicates, failures, connected *prometheus.Desc
}

func newRelayDescs() relayDescs {
	return relayDescs{
		lagEvents:  prometheus.NewDesc("idlog_eventbus_relay_lag_events", "Stored events not yet acknowledged by JetStream (at most 10000 are counted).", nil, nil),
		lagSeconds: prometheus.NewDesc("idlog_eventbus_relay_lag_seconds", "Age of the oldest stored event not yet acknowledged by JetStream; 0 when none.", nil, nil),
		position:   prometheus.NewDesc("idlog_eventbus_relay_position", "Highest global position acknowledged by JetStream with every position below it.", nil, nil),
		published:  prometheus.NewDesc("idlog_eventbus_relay_published_total", "Events JetStream stored.", nil, nil),
		duplicates: prometheus.NewDesc("idlog_eventbus_relay_duplicates_total", "Republished events JetStream dropped as already stored.", nil, nil),
		failures:   prometheus.NewDesc("idlog_eventbus_relay_failures_total", "Times the relay paused on a failure and started over from its checkpoint.", nil, nil),
		connected:  prometheus.NewDesc("idlog_eventbus_nats_connected", "1 while NATS answers, else 0.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (r *Relay) Describe(ch chan<- *prometheus.Desc) {
	d := r.descs
	for _, desc := range []*prometheus.Desc{d.lagEvents, d.lagSeconds, d.position, d.published, d.duplicates, d.failures, d.connected} {
		ch <- desc
	}
}

// Collect implements prometheus.Collector.
func (r *Relay) Collect(ch chan<- prometheus.Metric) {
	s := r.Status()
	d := r.descs
	r.mu.Lock()
	known := r.lagKnown
	r.mu.Unlock()
	if known {
		ch <- prometheus.MustNewConstMetric(d.lagEvents, prometheus.GaugeValue, float64(s.LagEvents))
		ch <- prometheus.MustNewConstMetric(d.lagSeconds, prometheus.GaugeValue, s.LagSeconds)
	}
	ch <- prometheus.MustNewConstMetric(d.position, prometheus.GaugeValue, float64(s.Position))
	ch <- prometheus.MustNewConstMetric(d.published, prometheus.CounterValue, float64(s.Published))
	ch <- prometheus.MustNewConstMetric(d.duplicates, prometheus.CounterValue, float64(s.Duplicates))
	ch <- prometheus.MustNewConstMetric(d.failures, prometheus.CounterValue, float64(r.failures.Load()))
	connected := 0.0
	if s.Connected {
		connected = 1
	}
	ch <- prometheus.MustNewConstMetric(d.connected, prometheus.GaugeValue, connected)
}
