package projections

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/follower"
	"github.com/idlog/idlog/internal/stmtcache"
	"github.com/idlog/idlog/lease"
	"github.com/idlog/idlog/migrations"
)

// Defaults of Options: the follower engine's, which runs the projectors.
const (
	DefaultBatchSize = follower.DefaultBatchSize
	MaxBatchSize     = follower.MaxBatchSize
	DefaultRetryMin  = follower.DefaultRetryMin
	DefaultRetryMax  = follower.DefaultRetryMax
)

// Errors of the runtime.
var (
	// ErrUnknownProjector: no projector of the runtime has that name.
	ErrUnknownProjector = errors.New("projections: unknown projector")
	// ErrStopped: the runtime was stopped.
	ErrStopped = errors.New("projections: runtime stopped")
	// ErrSuperseded: another rebuild of the same projector started after this one, which gave up.
	ErrSuperseded = errors.New("projections: rebuild superseded by a newer one")
)

// Options configure a Runtime.
type Options struct {
	// DB holds the read models and the runtime's tables (migrations 00010 and up). On SQLite, open
	// it with OpenSQLite; the event store's own pool is read-only.
	DB *sqlx.DB
	// Dialect of DB.
	Dialect migrations.Dialect
	// Store is the event log the projectors follow.
	Store eventstore.Store
	// Registry tells which event types this build knows (see Interest.SkipUnknown). Nil means
	// domain.NewEventRegistry().
	Registry *domain.Registry
	// Logger receives failures and rebuild progress. Nil discards them.
	Logger *slog.Logger
	// Metrics, when set, receives the runtime's Prometheus metrics.
	Metrics prometheus.Registerer
	// BatchSize is the most events one transaction applies. 0 means DefaultBatchSize.
	BatchSize int
	// RebuildBatchSize is the most events one transaction of a rebuild's first catch-up applies
	// (see Rebuild). 0 means DefaultRebuildBatchSize.
	RebuildBatchSize int
	// RetryMin and RetryMax bound the backoff of a failing projector, which doubles from RetryMin
	// after each failure in a row. 0 means DefaultRetryMin and DefaultRetryMax.
	RetryMin, RetryMax time.Duration
	// LogInDB says that the event log's events table is in DB, as with the Postgres and SQLite
	// stores: Status then counts the lag in events there. Otherwise the lag in events is -1
	// (unknown).
	LogInDB bool
	// Lease, when set, lets one replica at a time run each projector live; the others stand by
	// and answer WaitFor from the checkpoints in DB.
	Lease follower.Lease
	// SharedProgress, when set (PostgreSQL replicas), returns a channel closed when any
	// replica's projector commits: its commits then NOTIFY ProgressChannel, and a standby waiting
	// in WaitFor reads the checkpoints when told instead of polling every SharedPoll.
	SharedProgress func() <-chan struct{}
}

// ProgressChannel is the PostgreSQL NOTIFY channel of projector commits (Options.SharedProgress).
const ProgressChannel = "idlog_projection_progress"

func (o *Options) validate() error {
	switch {
	case o.DB == nil:
		return errors.New("projections: Options.DB is nil")
	case o.Store == nil:
		return errors.New("projections: Options.Store is nil")
	case o.BatchSize < 0 || o.BatchSize > MaxBatchSize:
		return fmt.Errorf("projections: batch size (%d) must be between 1 and %d", o.BatchSize, MaxBatchSize)
	case o.RebuildBatchSize < 0:
		return fmt.Errorf("projections: rebuild batch size (%d) cannot be negative", o.RebuildBatchSize)
	case o.RetryMin < 0 || o.RetryMax < 0:
		return fmt.Errorf("projections: retry backoff (%v, %v) cannot be negative", o.RetryMin, o.RetryMax)
	}
	if err := checkDialect(o.Dialect); err != nil {
		return err
	}
	if o.BatchSize == 0 {
		o.BatchSize = DefaultBatchSize
	}
	if o.RebuildBatchSize == 0 {
		o.RebuildBatchSize = DefaultRebuildBatchSize
	}
	if o.RetryMin == 0 {
		o.RetryMin = DefaultRetryMin
	}
	if o.RetryMax == 0 {
		o.RetryMax = DefaultRetryMax
	}
	if o.RetryMin > o.RetryMax {
		return fmt.Errorf("projections: retry min (%v) cannot be higher than retry max (%v)", o.RetryMin, o.RetryMax)
	}
	if o.Registry == nil {
		o.Registry = domain.NewEventRegistry()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Runtime runs projectors: one goroutine each, from its checkpoint, exactly once. It is safe for
// concurrent use.
type Runtime struct {
	o       Options
	d       dialect
	q       queries
	runners []*runner
	byName  map[string]*runner
	known   map[string]bool // event types this build knows
	m       *metrics

	mu       sync.Mutex
	started  bool
	stopping bool
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	progress chan struct{}    // closed and replaced whenever a live checkpoint moves
	group    chan *commitReq  // the live projectors' batches, to runGroup
	stmts    *stmtcache.Cache // the live batches' prepared statements
	stopped  chan struct{}
	watchers int // WaitFor calls watching the checkpoints other replicas move
}

// runner is the state of one projector's live goroutine.
type runner struct {
	p        Projector
	name     string
	interest Interest
	types    map[string]bool // nil: every known type

	mu         sync.Mutex
	running    bool
	loaded     bool // generation and position hold the checkpoint
	generation int64
	position   uint64
	lastErr    string
	lastErrAt  time.Time
	shared     uint64   // the live checkpoint as last read from the database (see pollShared)
	parts      []string // its tables partitioned by generation (see partitionedTables)
	partsKnown bool
	builds     map[int64]map[string]string // the tables of this process's rebuilds, by generation (see buildTables)

	follower *follower.Follower // the live projector
}

var projectorName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

// New checks the options and the projectors and returns a runtime that is not started.
func New(o Options, projectors ...Projector) (*Runtime, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	if len(projectors) == 0 {
		return nil, errors.New("projections: no projector")
	}
	r := &Runtime{
		o: o, d: dialect(o.Dialect), byName: map[string]*runner{}, known: map[string]bool{},
		progress: make(chan struct{}), stopped: make(chan struct{}), group: make(chan *commitReq),
	}
	r.q = newQueries(r.d)
	r.stmts = stmtcache.New(o.DB)
	for _, t := range o.Registry.Types() {
		r.known[t] = true
	}
	for _, p := range projectors {
		if p == nil {
			return nil, errors.New("projections: nil projector")
		}
		name := p.Name()
		if !projectorName.MatchString(name) {
			return nil, fmt.Errorf("projections: projector name %q must match %s", name, projectorName)
		}
		if r.byName[name] != nil {
			return nil, fmt.Errorf("projections: two projectors are named %q", name)
		}
		for _, t := range p.Tables() {
			if !projectorName.MatchString(t) {
				return nil, fmt.Errorf("projections: projector %q: table name %q must match %s", name, t, projectorName)
			}
		}
		rn := &runner{p: p, name: name, interest: p.Interest()}
		f, err := follower.New(follower.Options{
			Name: FollowerName(name), Store: o.Store, BatchSize: o.BatchSize, FlushEvery: passFlush / 2,
			RetryMin: o.RetryMin, RetryMax: o.RetryMax, FailLevel: slog.LevelError, Lease: o.Lease,
			Logger: o.Logger.With("projector", name), Metrics: o.Metrics,
		}, &liveStep{genStep{r: r, rn: rn, rl: roleLive}})
		if err != nil {
			return nil, err
		}
		rn.follower = f
		if rn.interest.Types != nil {
			rn.types = map[string]bool{}
			for _, t := range rn.interest.Types {
				rn.types[t] = true
			}
		}
		r.runners = append(r.runners, rn)
		r.byName[name] = rn
	}
	if o.Metrics != nil {
		m, err := newMetrics(r, o.Metrics)
		if err != nil {
			return nil, err
		}
		r.m = m
	} else {
		r.m = newUnregisteredMetrics()
	}
	return r, nil
}

// Start makes sure every projector has its bookkeeping rows and starts one goroutine per
// projector. They run until Stop, or until ctx ends.
func (r *Runtime) Start(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.stopping:
		return ErrStopped
	case r.started:
		return errors.New("projections: runtime already started")
	}
	for _, rn := range r.runners {
		if _, _, err := r.ensure(ctx, rn.name); err != nil {
			return err
		}
	}
	ctx, r.cancel = context.WithCancel(ctx)
	r.started = true
	go r.runGroup(ctx)
	for _, rn := range r.runners {
		rn.mu.Lock()
		rn.running = true
		rn.mu.Unlock()
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.runLive(ctx, rn)
		}()
	}
	return nil
}

// Stop stops the projectors, each after its current transaction ends or rolls back, and waits
// for them. It is safe to call more than once; a stopped runtime does not start again.
func (r *Runtime) Stop() {
	r.mu.Lock()
	if r.stopping {
		r.mu.Unlock()
		<-r.stopped
		return
	}
	r.stopping = true
	cancel := r.cancel
	r.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	r.wg.Wait()
	for _, rn := range r.runners {
		rn.mu.Lock()
		rn.running = false
		rn.mu.Unlock()
	}
	r.stmts.Close()
	close(r.stopped)
}

// WaitFor returns once every projector's live read model holds the effect of every event up to
// position (an AppendResult's LastPosition), so a reader sees a write it just made. It returns
// ctx's error, wrapped, if ctx ends first: bound the wait with a deadline, and past it answer that
// the view may lag.
func (r *Runtime) WaitFor(ctx context.Context, position uint64) error {
	watching := false
	var recheck <-chan time.Time
	for {
		if !watching && r.o.Lease != nil && !r.reached(position) {
			// Projectors another replica owns move in the database only: watch it while waiting.
			// While this process owns them all, their commits here wake the wait; should one of
			// them go to another replica meanwhile, the next look sees it.
			if r.allOwnedHere() {
				if recheck == nil {
					t := time.NewTicker(sharedFallbackPoll)
					defer t.Stop()
					recheck = t.C
				}
			} else {
				defer r.watchShared()()
				watching = true
			}
		}
		r.mu.Lock()
		wake := r.progress
		r.mu.Unlock()
		if r.reached(position) {
			return nil
		}
		select {
		case <-wake:
		case <-recheck:
		case <-ctx.Done():
			return fmt.Errorf("projections: wait for position %d: %w", position, ctx.Err())
		case <-r.stopped:
			return ErrStopped
		}
	}
}

// allOwnedHere says whether this process runs every projector live (under a lease, it owns them).
func (r *Runtime) allOwnedHere() bool { return r.runningHere() == len(r.runners) }

// SharedPoll is how often a replica that waits for projectors another replica owns reads their
// checkpoints: one small query for all its waiting requests.
const SharedPoll = 5 * time.Millisecond

// watchShared makes sure one goroutine polls the live checkpoints while anyone waits, and returns
// the function that says this waiter is done.
func (r *Runtime) watchShared() (done func()) {
	r.mu.Lock()
	r.watchers++
	if r.watchers == 1 {
		go r.pollShared()
	}
	r.mu.Unlock()
	return func() {
		r.mu.Lock()
		r.watchers--
		r.mu.Unlock()
	}
}

func (r *Runtime) pollShared() {
	poll := SharedPoll
	if r.o.SharedProgress != nil {
		poll = sharedFallbackPoll
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		var told <-chan struct{}
		if r.o.SharedProgress != nil {
			told = r.o.SharedProgress() // taken before the read, so a commit during it is not missed
		}
		r.mu.Lock()
		if r.watchers == 0 {
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		var rows []struct {
			Name     string `db:"name"`
			Position int64  `db:"position"`
		}
		err := r.o.DB.SelectContext(ctx, &rows, r.q.livePositions)
		cancel()
		if err == nil {
			moved := false
			for _, row := range rows {
				if rn := r.byName[row.Name]; rn != nil {
					rn.mu.Lock()
					if uint64(row.Position) > rn.shared {
						rn.shared, moved = uint64(row.Position), true
					}
					rn.mu.Unlock()
				}
			}
			if moved {
				r.notifyProgress()
			}
		}
		select {
		case <-t.C:
		case <-told:
		case <-r.stopped:
			return
		}
	}
}

// sharedFallbackPoll bounds the wait of a standby told of progress (Options.SharedProgress),
// should a notification be lost with its connection.
const sharedFallbackPoll = 100 * time.Millisecond

func (r *Runtime) reached(position uint64) bool {
	for _, rn := range r.runners {
		rn.mu.Lock()
		ok := (rn.loaded && rn.position >= position) || rn.shared >= position
		rn.mu.Unlock()
		if !ok {
			return false
		}
	}
	return true
}

func (r *Runtime) notifyProgress() {
	r.mu.Lock()
	close(r.progress)
	r.progress = make(chan struct{})
	r.mu.Unlock()
}

// Projectors lists the names of the runtime's projectors, in the order given to New.
func (r *Runtime) Projectors() []string {
	names := make([]string, len(r.runners))
	for i, rn := range r.runners {
		names[i] = rn.name
	}
	return names
}

// Internal signals between a batch and the loop that runs it.
var (
	// errCheckpointMoved: the checkpoint is not where this runner left it: a rebuild retired its
	// generation, or another runner (another process) moved it.
	errCheckpointMoved = errors.New("projections: checkpoint moved by another runner")
)

// retrySingly: a batch failed without naming an event; apply it again one event per transaction.
type retrySingly struct{ err error }

func (e *retrySingly) Error() string { return e.err.Error() }
func (e *retrySingly) Unwrap() error { return e.err }

type role int

const (
	roleLive role = iota
	roleBuild
)

// runLive follows the log for one projector until ctx ends, retrying after failures: the
// follower engine runs it, with liveStep as its step.
func (r *Runtime) runLive(ctx context.Context, rn *runner) {
	if err := rn.follower.Run(ctx); err != nil && ctx.Err() == nil {
		r.o.Logger.Error("projector stopped", "projector", rn.name, "error", err)
	}
}

// FollowerName is a projector's name as a follower (leases, metrics).
func FollowerName(projector string) string { return "projector." + projector }

// genStep applies events to one generation of a projector: the follower step of both the live
// projector and a rebuild.
type genStep struct {
	r        *Runtime
	rn       *runner
	gen      int64
	rl       role
	cur      cursor
	onCommit func(pos uint64, n int)
}

func (s *genStep) Apply(ctx context.Context, batch []eventstore.Event) (uint64, error) {
	_, err := s.r.applyBatch(ctx, s.rn, s.gen, s.rl, &s.cur, batch, s.onCommit)
	if err == nil && s.cur.pos != s.cur.saved && time.Since(s.cur.savedAt) >= s.flushAfter() {
		err = s.r.flush(ctx, s.rn, s.gen, s.rl, &s.cur)
	}
	return s.cur.pos, err
}

// flushAfter is how long the checkpoint of passed events may wait. Other replicas read a live
// projector's progress from its checkpoint only (see WaitFor), so under a lease on PostgreSQL it
// moves at once. (On SQLite one process owns every projector.)
func (s *genStep) flushAfter() time.Duration {
	if s.rl == roleLive && s.r.o.Lease != nil && s.r.o.Dialect == migrations.Postgres {
		return 0
	}
	return passFlush
}

// Flush saves the checkpoint of passed events once they waited passFlush.
func (s *genStep) Flush(ctx context.Context) (uint64, error) {
	if s.cur.pos == s.cur.saved || time.Since(s.cur.savedAt) < s.flushAfter() {
		return s.cur.pos, nil
	}
	return s.cur.pos, s.r.flush(ctx, s.rn, s.gen, s.rl, &s.cur)
}

// liveStep is the live projector: it resumes from the live generation's checkpoint.
type liveStep struct{ genStep }

func (s *liveStep) Resume(ctx context.Context) (uint64, error) {
	gen, from, err := s.r.ensure(ctx, s.rn.name)
	if err != nil {
		return 0, err
	}
	s.rn.setPosition(gen, from, s.r)
	s.gen, s.cur = gen, cursor{pos: from, saved: from, savedAt: time.Now()}
	s.onCommit = func(pos uint64, _ int) {
		s.rn.commitOK(gen, pos)
		s.r.notifyProgress()
	}
	return from, nil
}

func (s *liveStep) Apply(ctx context.Context, batch []eventstore.Event) (uint64, error) {
	pos, err := s.genStep.Apply(ctx, batch)
	if errors.Is(err, errCheckpointMoved) {
		var live int64
		if lerr := s.r.o.DB.GetContext(ctx, &live, s.r.q.liveGeneration, s.rn.name); lerr == nil && live != s.gen {
			s.r.o.Logger.Info("a rebuilt generation was swapped in; following it", "projector", s.rn.name, "generation", live)
			return pos, fmt.Errorf("%w: %w", follower.ErrRestart, err)
		}
	}
	return pos, err
}

// Failed records a failure in the status and the checkpoint row. A checkpoint moved by another
// runner is no failure of this projector: it reloads.
func (s *liveStep) Failed(ctx context.Context, err error) slog.Level {
	if errors.Is(err, errCheckpointMoved) {
		return slog.LevelWarn
	}
	s.r.fail(ctx, s.rn, s.gen, err)
	return slog.LevelError
}

// fail reports a failure everywhere it must be seen: status, log, metric and the checkpoint row
// (so `idlog projections status` in another process shows it).
func (r *Runtime) fail(ctx context.Context, rn *runner, gen int64, err error) {
	msg := err.Error()
	if len(msg) > 2000 {
		msg = msg[:2000]
	}
	now := time.Now()
	rn.mu.Lock()
	rn.lastErr, rn.lastErrAt = msg, now
	pos := rn.position
	rn.mu.Unlock()
	r.m.failures.WithLabelValues(rn.name).Inc()
	log := r.o.Logger.With("projector", rn.name, "generation", gen, "checkpoint", pos)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	defer r.lockWrites()()
	if _, serr := r.o.DB.ExecContext(sctx, r.q.saveError, msg, r.d.time(now), rn.name, gen); serr != nil {
		log.Warn("could not record the failure in projection_checkpoints", "error", serr)
	}
}

func (rn *runner) setPosition(gen int64, pos uint64, r *Runtime) {
	rn.mu.Lock()
	changed := !rn.loaded || rn.generation != gen || rn.position != pos
	rn.loaded, rn.generation, rn.position = true, gen, pos
	rn.mu.Unlock()
	if changed {
		r.notifyProgress()
	}
}

func (rn *runner) commitOK(gen int64, pos uint64) {
	rn.mu.Lock()
	rn.loaded, rn.generation, rn.position = true, gen, pos
	rn.lastErr, rn.lastErrAt = "", time.Time{}
	rn.mu.Unlock()
}

// ensure creates the projector's bookkeeping rows if missing and returns its live generation and
// that generation's checkpoint.
func (r *Runtime) ensure(ctx context.Context, name string) (gen int64, pos uint64, err error) {
	unlock := r.lockWrites()
	defer unlock()
	if _, err := r.o.DB.ExecContext(ctx, r.q.ensureGeneration, name); err != nil {
		return 0, 0, fmt.Errorf("projections: %s: create generation row: %w", name, err)
	}
	if err := r.o.DB.GetContext(ctx, &gen, r.q.liveGeneration, name); err != nil {
		return 0, 0, fmt.Errorf("projections: %s: read live generation: %w", name, err)
	}
	if _, err := r.o.DB.ExecContext(ctx, r.q.ensureCheckpoint, name, gen, r.d.time(time.Now())); err != nil {
		return 0, 0, fmt.Errorf("projections: %s: create checkpoint row: %w", name, err)
	}
	if err := r.ensurePartitions(ctx, r.byName[name], gen); err != nil {
		return 0, 0, err
	}
	p, err := r.checkpoint(ctx, name, gen)
	return gen, p, err
}

func (r *Runtime) checkpoint(ctx context.Context, name string, gen int64) (uint64, error) {
	var p int64
	if err := r.o.DB.GetContext(ctx, &p, r.q.checkpoint, name, gen); err != nil {
		return 0, fmt.Errorf("projections: %s: read checkpoint of generation %d: %w", name, gen, err)
	}
	return uint64(p), nil
}

// follow applies the events source yields after from, batch by batch, until the source ends
// (nil) or fails, or a batch fails, and then saves the checkpoint of passed events. It returns the
// last position the projector passed. The follower engine reads ahead and batches.
func (r *Runtime) follow(ctx context.Context, rn *runner, gen int64, from uint64, rl role,
	source func(context.Context, uint64) iter.Seq2[eventstore.Event, error], onCommit func(pos uint64, n int)) (uint64, error) {
	st := &genStep{r: r, rn: rn, gen: gen, rl: rl, cur: cursor{pos: from, saved: from, savedAt: time.Now()}, onCommit: onCommit}
	pos, err := follower.Pass(ctx, from, func(ctx context.Context) iter.Seq2[eventstore.Event, error] {
		return source(ctx, from)
	}, follower.Pacing{Step: resumeAt{st, from}, BatchSize: r.o.BatchSize, FlushEvery: passFlush / 2})
	if err != nil {
		return pos, err
	}
	// The end of a read (a rebuild's round): the checkpoint must say where it ended.
	return st.cur.pos, r.flush(ctx, rn, gen, rl, &st.cur)
}

// resumeAt makes a genStep a follower.Step for one pass from a known position.
type resumeAt struct {
	*genStep
	from uint64
}

func (s resumeAt) Resume(context.Context) (uint64, error) { return s.from, nil }

// passFlush bounds how long the checkpoint of events that were none of a projector's concern
// waits for a batch that writes; then a transaction of its own saves it. Below LiveLagThreshold,
// so that another process's Status does not see a live projector as catching up.
const passFlush = LiveLagThreshold / 2

// cursor is where one follow stands: pos is the last event the projector has passed, saved the
// checkpoint in the database. Events that are none of its concern move pos alone, without a
// transaction: after a crash they are read again, and passed again, with no effect.
type cursor struct {
	pos, saved uint64
	savedAt    time.Time
}

// flush saves the checkpoint of passed events.
func (r *Runtime) flush(ctx context.Context, rn *runner, gen int64, rl role, cur *cursor) error {
	if cur.pos == cur.saved {
		return nil
	}
	if err := r.commit(ctx, rn, gen, rl, cur.saved, cur.pos, nil, nil); err != nil {
		return err
	}
	cur.saved, cur.savedAt = cur.pos, time.Now()
	return nil
}

// applyBatch commits batch; if it fails without naming an event, it applies the rest again one
// event per transaction, so the projector stops exactly at the event that fails.
func (r *Runtime) applyBatch(ctx context.Context, rn *runner, gen int64, rl role, cur *cursor, batch []eventstore.Event, onCommit func(uint64, int)) (int, error) {
	n, err := r.process(ctx, rn, gen, rl, cur, batch, onCommit)
	var rs *retrySingly
	if !errors.As(err, &rs) {
		return n, err
	}
	for _, e := range batch[n:] {
		k, err := r.process(ctx, rn, gen, rl, cur, []eventstore.Event{e}, onCommit)
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// verdict is what a projector does with one event.
type verdict int

const (
	pass    verdict = iota // not its concern: only the checkpoint moves
	handle                 // goes to Apply
	unknown                // a type this build does not know
)

func (r *Runtime) classify(rn *runner, e eventstore.Event) verdict {
	if p := rn.interest.StreamPrefix; p != "" && (len(e.StreamID) < len(p) || e.StreamID[:len(p)] != p) {
		return pass
	}
	if !r.known[e.Type] {
		return unknown
	}
	if rn.types != nil && !rn.types[e.Type] {
		return pass
	}
	return handle
}

// process commits a batch, or its part before an event that cannot be applied, and returns how
// many events it passed. A batch with nothing for the projector moves cur.pos alone.
func (r *Runtime) process(ctx context.Context, rn *runner, gen int64, rl role, cur *cursor, batch []eventstore.Event, onCommit func(uint64, int)) (int, error) {
	cut := len(batch)
	var cutErr error
	deliver := make([]eventstore.Event, 0, len(batch))
	idx := make([]int, 0, len(batch)) // idx[i]: the index in batch of deliver[i]
	skipped := 0
classify:
	for i, e := range batch {
		switch r.classify(rn, e) {
		case handle:
			deliver = append(deliver, e)
			idx = append(idx, i)
		case unknown:
			if rn.interest.SkipUnknown {
				skipped++
				continue
			}
			cut, cutErr = i, FailedAt(e, fmt.Errorf("%w: %q", ErrUnknownEventType, e.Type))
			break classify
		}
	}
	if skipped > 0 {
		r.m.skipped.WithLabelValues(rn.name).Add(float64(skipped))
	}
	if cut == 0 {
		return 0, cutErr
	}
	passed := func(k int) {
		cur.pos = batch[k-1].GlobalPosition
		if rl == roleLive {
			r.m.events.WithLabelValues(rn.name).Add(float64(k))
		}
		onCommit(cur.pos, k)
	}
	if len(deliver) == 0 {
		passed(cut)
		return cut, cutErr
	}
	err := r.commit(ctx, rn, gen, rl, cur.saved, batch[cut-1].GlobalPosition, deliver, batch[:cut])
	if err == nil {
		cur.saved, cur.savedAt = batch[cut-1].GlobalPosition, time.Now()
		passed(cut)
		return cut, cutErr
	}
	if ctx.Err() != nil || errors.Is(err, errCheckpointMoved) || errors.Is(err, ErrSuperseded) || errors.Is(err, follower.ErrLeaseLost) {
		return 0, err
	}
	var ee *EventError
	if errors.As(err, &ee) {
		// Commit the events before the failing one, then stop at it.
		k := slices.IndexFunc(batch[:cut], func(e eventstore.Event) bool { return e.GlobalPosition == ee.Position })
		if k == 0 {
			return 0, err
		}
		if k > 0 {
			d := slices.IndexFunc(idx, func(i int) bool { return i >= k })
			if d < 0 {
				d = len(deliver)
			}
			if cerr := r.commit(ctx, rn, gen, rl, cur.saved, batch[k-1].GlobalPosition, deliver[:d], batch[:k]); cerr != nil {
				return 0, cerr
			}
			cur.saved, cur.savedAt = batch[k-1].GlobalPosition, time.Now()
			passed(k)
			return k, err
		}
	}
	if cut > 1 {
		return 0, &retrySingly{err}
	}
	if ee == nil {
		err = FailedAt(batch[0], err)
	}
	return 0, err
}

// commitReq is one projector's batch transaction: check that its generation may still be
// written, move its checkpoint from `from` to `to` (only if nobody else moved it), apply deliver.
// batch, the events the checkpoint passes, is only measured.
type commitReq struct {
	ctx      context.Context
	rn       *runner
	gen      int64
	rl       role
	from, to uint64
	deliver  []eventstore.Event
	batch    []eventstore.Event
	done     chan error
}

// commit runs a projector's batch. A live projector's batch joins the live group commit (see
// runGroup): the projectors woken by one append share one transaction.
func (r *Runtime) commit(ctx context.Context, rn *runner, gen int64, rl role, from, to uint64, deliver, batch []eventstore.Event) error {
	req := &commitReq{ctx: ctx, rn: rn, gen: gen, rl: rl, from: from, to: to, deliver: deliver, batch: batch}
	if rl != roleLive {
		return r.commitAlone(req)
	}
	req.done = make(chan error, 1)
	select {
	case r.group <- req:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		// The group may still commit the batch: the follower resumes from the checkpoint.
		return ctx.Err()
	}
}

// groupLinger bounds how long a group waits for the batches of the other projectors woken by the
// same appends: they read the same events within microseconds of one another.
const groupLinger = 300 * time.Microsecond

// runningHere counts the projectors this process runs live now.
func (r *Runtime) runningHere() int {
	n := 0
	for _, rn := range r.runners {
		if st := rn.follower.Status().State; st != follower.StateStandby && st != follower.StateStopped {
			n++
		}
	}
	return n
}

// maxGroup bounds the batches of one group transaction.
const maxGroup = 64

// runGroup commits the live projectors' batches, all that are waiting in one transaction. If the
// transaction fails, each batch is committed again alone, so a failure belongs to the projector
// that failed and the others are not held back by it. It runs until the runtime stops or ctx,
// the runtime's, ends.
func (r *Runtime) runGroup(ctx context.Context) {
	reqs := make([]*commitReq, 0, maxGroup)
	for {
		var first *commitReq
		select {
		case first = <-r.group:
		case <-r.stopped:
			return
		case <-ctx.Done():
			return
		}
		reqs = append(reqs[:0], first)
		// The batches that arrived while the last transaction ran: the projectors woken by the
		// same appends. Under a lease every live projector commits every batch it reads (its
		// checkpoint is how other replicas see its progress), so the group also waits a moment,
		// until each projector this process runs has sent its batch.
		var linger <-chan time.Time
		var lingerTimer *time.Timer
		want := 0
		if r.o.Lease != nil {
			lingerTimer = time.NewTimer(groupLinger)
			linger = lingerTimer.C
			want = r.runningHere()
		}
	gather:
		for len(reqs) < maxGroup {
			select {
			case req := <-r.group:
				reqs = append(reqs, req)
				continue
			default:
			}
			if linger == nil || len(reqs) >= want {
				break
			}
			select {
			case req := <-r.group:
				reqs = append(reqs, req)
			case <-linger:
				break gather
			}
		}
		if lingerTimer != nil {
			lingerTimer.Stop()
		}
		if len(reqs) == 1 {
			first.done <- r.commitAlone(first)
			continue
		}
		if err := r.commitGroup(ctx, reqs); err != nil {
			for _, req := range reqs {
				req.done <- r.commitAlone(req)
			}
			continue
		}
		for _, req := range reqs {
			req.done <- nil
		}
	}
}

// commitGroup runs reqs in one transaction, all or none; ctx, the runtime's, ends it at Stop.
func (r *Runtime) commitGroup(ctx context.Context, reqs []*commitReq) error {
	start := time.Now()
	defer r.lockWrites()()
	tx, done, err := beginWrite(ctx, r.o.DB, r.d)
	if err != nil {
		return err
	}
	defer done()
	defer tx.Rollback() //nolint:errcheck // a no-op after commit
	for _, req := range reqs {
		if err := r.apply(req, tx); err != nil {
			return err
		}
	}
	ctxs := make([]context.Context, len(reqs))
	for i, req := range reqs {
		ctxs[i] = req.ctx
	}
	if err := lease.CheckAll(ctxs, r.stmts.In(tx), r.o.Dialect); err != nil {
		return err
	}
	if err := r.advanceAll(ctx, tx, reqs); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	r.transactionEnded()
	for _, req := range reqs {
		r.committed(req, start)
	}
	return nil
}

// transactionEnded tells the store that a live transaction, which may have held back the log's
// newest events from its readers, committed.
func (r *Runtime) transactionEnded() {
	if w, ok := r.o.Store.(eventstore.HorizonWaker); ok {
		w.TransactionEnded()
	}
}

// commitAlone runs req in a transaction of its own.
func (r *Runtime) commitAlone(req *commitReq) error {
	start := time.Now()
	defer r.lockWrites()()
	tx, done, err := beginWrite(req.ctx, r.o.DB, r.d)
	if err != nil {
		return fmt.Errorf("projections: %s: begin: %w", req.rn.name, err)
	}
	defer done()
	defer tx.Rollback() //nolint:errcheck // a no-op after commit
	if err := r.inTx(req, tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("projections: %s: commit: %w", req.rn.name, err)
	}
	if req.rl == roleLive {
		r.transactionEnded()
	}
	r.committed(req, start)
	return nil
}

// inTx applies req's events and moves its checkpoint in tx.
func (r *Runtime) inTx(req *commitReq, tx *sqlx.Tx) error {
	if err := r.apply(req, tx); err != nil {
		return err
	}
	return r.advance(req, tx)
}

// apply applies req's events in tx.
func (r *Runtime) apply(req *commitReq, tx *sqlx.Tx) error {
	ctx, rn, gen, rl := req.ctx, req.rn, req.gen, req.rl
	if len(req.deliver) > 0 {
		shared, _ := ctx.Value(sharedBatchKey{}).(*batchItem)
		var tables map[string]string
		if rl == roleBuild {
			rn.mu.Lock()
			tables = rn.builds[gen]
			rn.mu.Unlock()
		}
		var stmts *stmtcache.Cache
		if rl == roleLive {
			stmts = r.stmts
		}
		if err := rn.p.Apply(ctx, &Tx{Tx: tx, Generation: gen, Bulk: rl == roleBuild, dialect: r.d, shared: shared, tables: tables, stmts: stmts}, req.deliver); err != nil {
			if rl == roleBuild && isUndefinedTable(err) {
				return ErrSuperseded // a newer rebuild dropped this one's table
			}
			return err
		}
	}
	return nil
}

// advance moves req's checkpoint in tx, the transaction's last write.
func (r *Runtime) advance(req *commitReq, tx *sqlx.Tx) error {
	ctx, rn, gen, rl := req.ctx, req.rn, req.gen, req.rl
	// The checkpoint moves last, only from where this runner left it and only if its generation
	// was not retired meanwhile (a swap, or a newer rebuild, marks it in its own transaction; a
	// batch in flight then waits for that row, finds it retired and rolls back whole). So a batch
	// takes no lock before it writes, and holds a Postgres transaction id, which holds back every
	// follower of the log (see eventstore/postgres), only for its writes and commit.
	// Under a lease, only the owner's batches commit: a stalled owner that wakes up is refused.
	if err := lease.Check(ctx, r.stmts.In(tx), r.o.Dialect); err != nil {
		return err
	}
	advance := r.q.advance
	if r.o.SharedProgress != nil && rl == roleLive && r.q.advanceNotify != "" {
		advance = r.q.advanceNotify
	}
	res, err := r.stmts.ExecContext(ctx, tx, advance, int64(req.to), r.d.time(time.Now()), rn.name, gen, int64(req.from))
	if err != nil {
		return fmt.Errorf("projections: %s: move checkpoint: %w", rn.name, err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		if rl == roleBuild {
			return ErrSuperseded
		}
		return errCheckpointMoved
	}
	return nil
}

// advanceAll moves the checkpoints of a group's batches in tx: on PostgreSQL in one statement.
func (r *Runtime) advanceAll(ctx context.Context, tx *sqlx.Tx, reqs []*commitReq) error {
	if r.q.advanceAll == "" {
		for _, req := range reqs {
			if err := r.advance(req, tx); err != nil {
				return err
			}
		}
		return nil
	}
	names := make([]string, len(reqs))
	gens, froms, tos := make([]int64, len(reqs)), make([]int64, len(reqs)), make([]int64, len(reqs))
	for i, req := range reqs {
		names[i], gens[i], froms[i], tos[i] = req.rn.name, req.gen, int64(req.from), int64(req.to)
	}
	q := r.q.advanceAll
	if r.o.SharedProgress != nil {
		q = r.q.advanceAllNotify
	}
	res, err := r.stmts.ExecContext(ctx, tx, q, r.d.time(time.Now()), pq.Array(names), pq.Array(gens), pq.Array(froms), pq.Array(tos))
	if err != nil {
		return fmt.Errorf("projections: move %d checkpoints: %w", len(reqs), err)
	}
	if n, err := res.RowsAffected(); err != nil || n != int64(len(reqs)) {
		return errCheckpointMoved
	}
	return nil
}

// committed measures a committed batch.
func (r *Runtime) committed(req *commitReq, start time.Time) {
	now := time.Now()
	r.m.batchSeconds.WithLabelValues(req.rn.name).Observe(now.Sub(start).Seconds())
	// The delay from append to visible, on the newest event of a batch that is not full: a full
	// batch is catching up, and its events' age says nothing about live lag.
	if req.rl == roleLive && len(req.batch) > 0 && len(req.batch) < r.o.BatchSize {
		r.m.visible.WithLabelValues(req.rn.name).Observe(now.Sub(req.batch[len(req.batch)-1].RecordedAt).Seconds())
	}
}

// sqliteWriters holds, per connection pool, a mutex that orders the write transactions of every
// runtime of this process on one SQLite file. Waiting on it hands the file's write lock over at
// once; waiting in SQLite's busy handler sleeps and polls, up to 25 ms a turn.
var sqliteWriters sync.Map // *sqlx.DB -> *sync.Mutex

// lockWrites takes the SQLite writers' mutex, if the database is SQLite, and returns its unlock.
func (r *Runtime) lockWrites() func() {
	if migrations.Dialect(r.d) != migrations.SQLite {
		return func() {}
	}
	v, _ := sqliteWriters.LoadOrStore(r.o.DB, &sync.Mutex{})
	mu := v.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

// queries are the runtime's statements in the database's dialect.
type queries struct {
	ensureGeneration, liveGeneration, ensureCheckpoint, checkpoint string
	advance, saveError, retire                                     string
	lockGeneration, startBuild, newCheckpoint, swap                string
	maxGeneration, generations, checkpoints                        string
	livePositions                                                  string
	advanceNotify                                                  string // advance that notifies ProgressChannel
	advanceAll, advanceAllNotify                                   string // advance of a group (PostgreSQL)
}

func newQueries(d dialect) queries {
	q := queries{
		ensureGeneration: d.rebind(`INSERT INTO projection_generations (name, live) VALUES (?, 1) ON CONFLICT (name) DO NOTHING`),
		liveGeneration:   d.rebind(`SELECT live FROM projection_generations WHERE name = ?`),
		ensureCheckpoint: d.rebind(`INSERT INTO projection_checkpoints (name, generation, position, updated_at) VALUES (?, ?, 0, ?) ON CONFLICT (name, generation) DO NOTHING`),
		checkpoint:       d.rebind(`SELECT position FROM projection_checkpoints WHERE name = ? AND generation = ?`),
		advance: d.rebind(`UPDATE projection_checkpoints SET position = ?, updated_at = ?, last_error = NULL, last_error_at = NULL
			WHERE name = ? AND generation = ? AND position = ? AND NOT retired`),
		saveError:      d.rebind(`UPDATE projection_checkpoints SET last_error = ?, last_error_at = ? WHERE name = ? AND generation = ?`),
		retire:         d.rebind(`UPDATE projection_checkpoints SET retired = ` + d.true() + ` WHERE name = ? AND generation = ? RETURNING position`),
		lockGeneration: d.rebind(`SELECT live, building FROM projection_generations WHERE name = ?` + d.lockUpdate()),
		startBuild:     d.rebind(`UPDATE projection_generations SET building = ? WHERE name = ?`),
		newCheckpoint:  d.rebind(`INSERT INTO projection_checkpoints (name, generation, position, updated_at) VALUES (?, ?, 0, ?)`),
		swap:           d.rebind(`UPDATE projection_generations SET live = ?, building = NULL, swapped_at = ? WHERE name = ? AND building = ?`),
		maxGeneration:  d.rebind(`SELECT coalesce(max(generation), 0) FROM projection_checkpoints WHERE name = ?`),
		generations:    d.rebind(`SELECT name, live, building FROM projection_generations`),
		checkpoints:    `SELECT name, generation, position, updated_at, last_error, last_error_at FROM projection_checkpoints`,
		livePositions: `SELECT c.name, c.position FROM projection_checkpoints c
			JOIN projection_generations g ON g.name = c.name AND g.live = c.generation`,
	}
	if migrations.Dialect(d) == migrations.Postgres {
		// The commit is asynchronous: a crash may lose the last batches, but only whole, with their
		// checkpoint, and the projector applies them again; it saves a WAL flush per batch, which
		// live (small) batches feel most. Set here, it costs no round trip of its own.
		q.advance += ` RETURNING set_config('synchronous_commit', 'off', true)`
		// Replicas waiting for this projector's progress (see WaitFor) are told at the commit:
		// once per transaction, whatever the number of projectors in it, as PostgreSQL sends a
		// transaction's identical notifications as one (listeners read the checkpoints anyway).
		q.advanceNotify = q.advance + `, pg_notify('` + ProgressChannel + `', '')`
		q.advanceAll = `UPDATE projection_checkpoints c SET position = v.to_, updated_at = $1, last_error = NULL, last_error_at = NULL
			FROM unnest($2::text[], $3::bigint[], $4::bigint[], $5::bigint[]) AS v(name, gen, from_, to_)
			WHERE c.name = v.name AND c.generation = v.gen AND c.position = v.from_ AND NOT c.retired
			RETURNING set_config('synchronous_commit', 'off', true)`
		q.advanceAllNotify = q.advanceAll + `, pg_notify('` + ProgressChannel + `', '')`
	}
	return q
}
