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
	"github.com/idlog/idlog/follower"
)

// DefaultCheckpointName is the name under which the relay keeps its position in the store.
const DefaultCheckpointName = "nats-relay"

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
	// Lease, when set, lets one replica at a time run the relay; the others stand by.
	Lease follower.Lease
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
	// fence is the lease token of the run that publishes (nil without a Lease): checkpoint saves
	// carry it, so that once another replica holds the relay's lease they are refused.
	fence atomic.Pointer[follower.Fence]

	mu         sync.Mutex
	err        error // why the relay is not publishing, nil while it is
	lagEvents  int
	lagSeconds float64
	lagKnown   bool

	descs relayDescs

	follower        *follower.Follower
	step            *relayStep
	followerMetrics prometheus.Collector
}

// NewRelay checks o and returns a relay. Run starts it.
func NewRelay(o RelayOptions) (*Relay, error) {
	o, err := o.validate()
	if err != nil {
		return nil, err
	}
	r := &Relay{opts: o, log: o.Logger, descs: newRelayDescs()}
	// Large batches while catching up: each is signed on every core while the last one's
	// publishes are still in flight.
	batch := min(max(16*o.Window, 1024), follower.MaxBatchSize)
	r.step = &relayStep{r: r, batchSize: batch, enc: encoder{signer: o.Client.opts.Signer, source: o.Source}}
	r.follower, err = follower.New(follower.Options{
		Name: RelayFollowerName, Store: o.Store, BatchSize: batch,
		RetryMin: o.MinBackoff, RetryMax: o.MaxBackoff,
		Wake:      o.Client.changed, // NATS is back: no need to wait out the pause
		FailLevel: slog.LevelWarn, Lease: o.Lease, Logger: o.Logger,
	}, r.step)
	if err != nil {
		return nil, err
	}
	r.followerMetrics = r.follower.Collector()
	return r, nil
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
	// State is the relay's follower state (follower.StateRunning, StateStandby, ...); Owner names
	// the replica that owns the relay, when a Lease is set.
	State, Owner string
	// Err says why the relay is not publishing; nil while it is.
	Err error
}

// Status returns the relay's state now.
func (r *Relay) Status() RelayStatus {
	fs := r.follower.Status()
	r.mu.Lock()
	defer r.mu.Unlock()
	return RelayStatus{
		Position:   r.position.Load(),
		Published:  r.published.Load(),
		Duplicates: r.duplicates.Load(),
		LagEvents:  r.lagEvents,
		LagSeconds: r.lagSeconds,
		Connected:  r.opts.Client.connected(),
		State:      fs.State,
		Owner:      fs.Owner,
		Err:        r.err,
	}
}

// Check is a readiness check: nil while NATS answers and the relay publishes, else why not.
func (r *Relay) Check(ctx context.Context) error {
	if err := r.opts.Client.Check(ctx); err != nil {
		return err
	}
	standby := !r.owns() // another replica publishes: this one's last failure is history
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil && !standby {
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
// it logs them, pauses, and starts over from its checkpoint. A Relay runs once at a time. The
// follower engine does the following; publishing is its step (see relayStep).
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

	runErr := r.follower.Run(ctx)
	// A stop between two batches leaves the last one's publishes in flight: give their
	// acknowledgements a moment, so the checkpoint keeps what JetStream has already stored.
	if len(r.step.pending) > 0 {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		if err := r.step.settle(actx, true); err != nil && actx.Err() == nil {
			r.log.Debug("event relay: acknowledgements at stop", "error", err)
		}
		cancel()
	}

	stopBG()
	wg.Wait()
	// The last position, saved outside the ended context so a stop keeps what was acknowledged.
	if pos := r.position.Load(); pos > <-saved && r.owns() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		switch err := r.saveCheckpoint(sctx, pos); {
		case errors.Is(err, follower.ErrLeaseLost):
			// Another process owns the relay now (this one stalled past its lease): the fence
			// did its job, and the owner publishes from its own checkpoint.
			r.log.Warn("event relay: checkpoint not saved, another process owns the relay now", "position", pos, "error", err)
		case err != nil:
			r.log.Error("event relay: save checkpoint", "position", pos, "error", err)
		}
	}
	r.log.Debug("event relay stopped", "position", r.position.Load())
	return runErr
}

// owns reports whether this process runs the relay: a standby's position is the owner's, read
// from the checkpoint, and must not be written back over the owner's newer one.
func (r *Relay) owns() bool {
	st := r.follower.Status().State
	return st != follower.StateStandby
}

// RelayFollowerName is the relay's name as a follower (status, metrics, lease).
const RelayFollowerName = "nats-relay"

// relayStep publishes batches of the log to JetStream: the durable position is the highest one
// JetStream acknowledged with everything below it.
type relayStep struct {
	r         *Relay
	js        jetstream.JetStream
	prevID    string     // the last message published in this run
	pending   []inflight // published in this run, awaiting their acknowledgement, in order
	enc       encoder
	batchSize int
}

// Resume connects, makes sure the stream exists and finds where to publish from.
func (st *relayStep) Resume(ctx context.Context) (uint64, error) {
	r := st.r
	// The engine runs the step under the lease's token, if any; the checkpoint saves, which run
	// beside it, carry it from here.
	if f, ok := follower.TokenFrom(ctx); ok {
		r.fence.Store(&f)
	}
	nc, err := r.opts.Client.Conn(ctx)
	if err != nil {
		return 0, err
	}
	if !nc.IsConnected() {
		return 0, r.opts.Client.Check(ctx)
	}
	// One JetStream handle per connection: each holds a reply subscription for acknowledgements.
	if r.js == nil || r.jsConn != nc {
		js, err := jetstream.New(nc,
			// The window: a publish waits (up to AckTimeout) while Window others await their
			// acknowledgement. The client itself wakes it when an acknowledgement arrives.
			jetstream.WithPublishAsyncMaxPending(r.opts.Window),
			jetstream.WithPublishAsyncTimeout(r.opts.AckTimeout))
		if err != nil {
			return 0, fmt.Errorf("eventbus: %w", err)
		}
		r.js, r.jsConn = js, nc
	}
	st.js, st.prevID = r.js, ""
	clear(st.pending) // a failed run's: their acknowledgements no longer count
	st.pending = st.pending[:0]
	stream, err := ensureStream(ctx, st.js, jetstream.StreamConfig{
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
		return 0, err
	}
	from, err := r.startPosition(ctx, stream)
	if err != nil {
		return 0, err
	}
	r.position.Store(from)
	r.setErr(nil)
	r.log.Debug("event relay publishing", "from", from)
	return from, nil
}

// Apply publishes batch with up to Window publishes awaiting their acknowledgement. The messages
// are encoded and signed on every core (signing costs more than publishing), a chunk ahead of
// the publishes, in order. A full batch means the engine has more read ahead: its last publishes
// stay in flight while the next batch is signed, and a later Apply (or Run, when it stops)
// collects their acknowledgements. A batch that is not full (following live) waits for all of
// them, so the position is that of its last event. A stop (ctx) gives pending acknowledgements a
// moment, so the checkpoint keeps what JetStream has already stored.
func (st *relayStep) Apply(ctx context.Context, batch []eventstore.Event) (uint64, error) {
	r := st.r
	acks, stopAcks := context.WithCancel(context.WithoutCancel(ctx))
	defer stopAcks()
	grace := context.AfterFunc(ctx, func() { time.AfterFunc(time.Second, stopAcks) })
	defer grace()

	msgs := st.enc.start(batch)
	defer msgs.stop()
	var failed error
	for i, e := range batch {
		msg, err := msgs.wait(ctx, i)
		if err != nil {
			failed = err
			break
		}
		// Chained to the previous message of this run: if that one is lost, this one is
		// refused too, and the run starts over before anything can be stored out of order.
		// A stalled owner that wakes up after another took over is refused the same way. The
		// encoder chained the batch's messages to each other; the first follows the last run's.
		if i == 0 && st.prevID != "" {
			msg.Header[headerExpectedLastID] = []string{st.prevID}
		}
		ack, err := st.js.PublishMsgAsync(msg)
		// A full window that stays full past the client's stall wait publishes nothing: try
		// again. Acknowledgements or their timeouts free it in the end.
		for errors.Is(err, jetstream.ErrTooManyStalledMsgs) && ctx.Err() == nil {
			ack, err = st.js.PublishMsgAsync(msg)
		}
		if err != nil {
			failed = fmt.Errorf("eventbus: publish event at position %d: %w", e.GlobalPosition, err)
			break
		}
		st.prevID = msg.Header[headerMsgID][0]
		st.pending = append(st.pending, inflight{pos: e.GlobalPosition, ack: ack})
		if ctx.Err() != nil {
			break
		}
	}
	catchingUp := len(batch) >= st.batchSize && failed == nil && ctx.Err() == nil
	if err := st.settle(acks, !catchingUp); failed == nil {
		failed = err
	}
	if failed == nil {
		failed = ctx.Err()
	}
	return r.position.Load(), failed
}

// settle collects the acknowledgements of the pending publishes in order, moving the position
// over each stored one: all of them (until acks ends) when wait is set, else those already in.
func (st *relayStep) settle(acks context.Context, wait bool) error {
	r := st.r
	done := 0
	defer func() {
		n := copy(st.pending, st.pending[done:])
		clear(st.pending[n:])
		st.pending = st.pending[:n]
	}()
	for _, f := range st.pending {
		var (
			ack *jetstream.PubAck
			err error
		)
		if wait {
			select {
			case ack = <-f.ack.Ok():
			case err = <-f.ack.Err():
			case <-acks.Done():
				return acks.Err()
			}
		} else {
			select {
			case ack = <-f.ack.Ok():
			case err = <-f.ack.Err():
			default:
				return nil
			}
		}
		if err != nil {
			done = len(st.pending) // the run starts over: the rest no longer count
			return fmt.Errorf("eventbus: JetStream did not store the event at position %d: %w", f.pos, err)
		}
		if ack.Duplicate {
			r.duplicates.Add(1)
		} else {
			r.published.Add(1)
		}
		r.position.Store(f.pos)
		done++
	}
	return nil
}

// Failed shows the failure in Status and the metrics.
func (st *relayStep) Failed(_ context.Context, err error) slog.Level {
	st.r.failures.Add(1)
	st.r.setErr(err)
	return slog.LevelWarn
}

// inflight is a publish awaiting its acknowledgement.
type inflight struct {
	pos uint64
	ack jetstream.PubAckFuture
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
		if pos <= saved || !r.owns() {
			continue
		}
		if err := r.saveCheckpoint(ctx, pos); err != nil {
			if ctx.Err() == nil {
				r.log.Warn("event relay: save checkpoint", "position", pos, "error", err)
			}
			continue
		}
		saved = pos
	}
}

// saveCheckpoint saves pos as the relay's checkpoint, fenced by the lease token of the run that
// reached it: a process that stalled past its lease and woke up, still believing it owns the
// relay, is refused (follower.ErrLeaseLost) instead of moving the owner's checkpoint.
func (r *Relay) saveCheckpoint(ctx context.Context, pos uint64) error {
	if f := r.fence.Load(); f != nil {
		ctx = follower.WithToken(ctx, f.Name, f.Token)
	}
	return r.opts.Checkpoints.SetCheckpoint(ctx, r.opts.CheckpointName, pos)
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
		// A standby's position is the owner's: read it where the owner saves it.
		if r.follower.Status().State == follower.StateStandby {
			if pos, err := r.opts.Checkpoints.Checkpoint(ctx, r.opts.CheckpointName); err == nil {
				r.position.Store(pos)
			}
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
	r.followerMetrics.Describe(ch)
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
	r.followerMetrics.Collect(ch)
}
