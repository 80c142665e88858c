// Package follower runs idlog's followers of the global event log (the projectors, the NATS relay,
// the audit sealer): one engine that reads ahead, batches, backs off after failures and reports
// position, status and metrics, handing each batch to a Step that applies it and returns the
// durable position. With a Lease, one process at a time runs a follower; the others stand by.
package follower

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/idlog/idlog/eventstore"
)

// Defaults of Options.
const (
	DefaultBatchSize = 1000
	MaxBatchSize     = 10000
	DefaultRetryMin  = 100 * time.Millisecond
	DefaultRetryMax  = 30 * time.Second
)

var (
	// ErrRestart, wrapped in a Step's error, makes the engine resume at once from Step.Resume,
	// without a pause and without counting a failure (a rebuilt generation was swapped in, say).
	ErrRestart = errors.New("follower: resume from the durable position")
	// ErrLeaseLost, wrapped in a Step's error, says that a write was refused because this process
	// no longer owns the follower: the engine stops following and stands by.
	ErrLeaseLost = errors.New("follower: this process no longer owns the follower")
	// ErrRunning: Run was called while the follower runs.
	ErrRunning = errors.New("follower: already running")
	// errSubscriptionEnded: a live subscription ended while its context had not.
	errSubscriptionEnded = errors.New("follower: the event log subscription ended")
)

// Step is what a follower does with the log.
type Step interface {
	// Resume returns the durable position: every event up to it has had its effect, and following
	// goes on after it. The engine calls it at start and after every failure.
	Resume(ctx context.Context) (uint64, error)
	// Apply applies batch, the next events of the log in order, and returns the durable position
	// after it. On failure it returns the position it did reach and the error; the engine then
	// pauses and resumes from Resume.
	Apply(ctx context.Context, batch []eventstore.Event) (uint64, error)
}

// Flusher is a Step with work due while no event arrives (a checkpoint of events that changed
// nothing, a timed audit checkpoint). Flush runs every FlushEvery, between batches.
type Flusher interface {
	Flush(ctx context.Context) (uint64, error)
}

// FailureRecorder is a Step that records its failures itself (in its checkpoint row, say).
// Failed returns the level the engine logs the failure at.
type FailureRecorder interface {
	Failed(ctx context.Context, err error) slog.Level
}

// Options configure a Follower.
type Options struct {
	// Name identifies the follower in status, logs, metrics and leases.
	Name string
	// Store is the log followed.
	Store eventstore.Store
	// Filter narrows the events read; the zero Filter reads every event.
	Filter eventstore.Filter
	// BatchSize is the most events one Apply gets; a batch takes what has been read ahead, so it
	// is large while catching up and small when live. 0 means DefaultBatchSize.
	BatchSize int
	// FlushEvery is how often a Flusher's Flush runs. 0 means never.
	FlushEvery time.Duration
	// Linger, when set, makes a live batch smaller than BatchSize wait up to this long for more
	// events before Apply: fewer, larger transactions for a follower nobody waits on (the audit
	// sealer), at the cost of that much more lag. 0 applies what has arrived at once.
	Linger time.Duration
	// RetryMin and RetryMax bound the pause after a failure, which doubles from RetryMin after
	// each failure in a row. 0 means DefaultRetryMin and DefaultRetryMax.
	RetryMin, RetryMax time.Duration
	// Wake, when set, returns a channel closed when a pause may end early (NATS came back).
	Wake func() <-chan struct{}
	// FailLevel is the level failures are logged at. The zero value is slog.LevelInfo: set
	// slog.LevelError or slog.LevelWarn.
	FailLevel slog.Level
	// Lease, when set, makes the follower run only while this process owns it (see Lease).
	Lease Lease
	// Logger receives failures and changes of owner. Nil discards them.
	Logger *slog.Logger
	// Metrics, when set, receives the follower's metrics (idlog_follower_*{follower=Name}).
	Metrics prometheus.Registerer
}

var followerName = regexp.MustCompile(`^[a-z][a-z0-9_.-]{0,62}$`)

func (o *Options) validate() error {
	switch {
	case !followerName.MatchString(o.Name):
		return fmt.Errorf("follower: name %q must match %s", o.Name, followerName)
	case o.Store == nil:
		return fmt.Errorf("follower: %s: Store is nil", o.Name)
	case o.BatchSize < 0 || o.BatchSize > MaxBatchSize:
		return fmt.Errorf("follower: %s: batch size (%d) must be between 1 and %d", o.Name, o.BatchSize, MaxBatchSize)
	case o.RetryMin < 0 || o.RetryMax < 0 || o.FlushEvery < 0 || o.Linger < 0:
		return fmt.Errorf("follower: %s: retry (%v, %v), flush interval (%v) and linger (%v) cannot be negative", o.Name, o.RetryMin, o.RetryMax, o.FlushEvery, o.Linger)
	}
	if o.BatchSize == 0 {
		o.BatchSize = DefaultBatchSize
	}
	if o.RetryMin == 0 {
		o.RetryMin = DefaultRetryMin
	}
	if o.RetryMax == 0 {
		o.RetryMax = DefaultRetryMax
	}
	if o.RetryMin > o.RetryMax {
		return fmt.Errorf("follower: %s: retry min (%v) cannot be higher than retry max (%v)", o.Name, o.RetryMin, o.RetryMax)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// The states of a follower in Status.
const (
	StateStopped  = "stopped"
	StateStandby  = "standby" // another process owns the follower
	StateRunning  = "running"
	StateFailing  = "failing" // the last attempt failed; a retry is due
	StateStarting = "starting"
)

// Status is where a follower of this process stands.
type Status struct {
	Name  string
	State string
	// Position is the last durable position this process saw (its own, or, standing by, none).
	Position uint64
	// Owner names the process that owns the follower, when a Lease says so; Token is its fencing
	// token. Both empty without a Lease.
	Owner string
	Token int64
	// Events counts the events this process applied; Failures the attempts that failed.
	Events, Failures uint64
	Err              error
	ErrAt            time.Time
}

// Follower follows the log with one Step. Run runs it; Status reports it from any goroutine.
type Follower struct {
	o    Options
	step Step

	running  atomic.Bool
	position atomic.Uint64
	events   atomic.Uint64
	failures atomic.Uint64

	mu    sync.Mutex
	state string
	owner string
	token int64
	err   error
	errAt time.Time
}

// New checks o and returns a follower that is not running. A nil step is a wiring mistake and
// panics.
func New(o Options, step Step) (*Follower, error) {
	if step == nil {
		panic("follower: New needs a step")
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	f := &Follower{o: o, step: step, state: StateStopped}
	if o.Metrics != nil {
		if err := o.Metrics.Register(newCollector(f)); err != nil {
			return nil, fmt.Errorf("follower: %s: register metrics: %w", o.Name, err)
		}
	}
	return f, nil
}

// Name is the follower's name.
func (f *Follower) Name() string { return f.o.Name }

// Status returns the follower's state now.
func (f *Follower) Status() Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return Status{
		Name: f.o.Name, State: f.state, Position: f.position.Load(), Owner: f.owner, Token: f.token,
		Events: f.events.Load(), Failures: f.failures.Load(), Err: f.err, ErrAt: f.errAt,
	}
}

// Err is why the follower is not following, nil while it is (or stands by).
func (f *Follower) Err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

func (f *Follower) set(state string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.state = state
	if err != nil || state == StateRunning || state == StateStandby || state == StateStopped {
		f.err = err
		f.errAt = time.Time{}
		if err != nil {
			f.errAt = time.Now()
		}
	}
}

// Run follows the log until ctx ends, then returns nil. Failures do not end it: it logs them,
// pauses and resumes from the step's durable position. Only a closed store ends it early, with
// an error matching eventstore.ErrClosed. A follower runs once at a time.
func (f *Follower) Run(ctx context.Context) error {
	if !f.running.CompareAndSwap(false, true) {
		return fmt.Errorf("%w: %s", ErrRunning, f.o.Name)
	}
	defer f.running.Store(false)
	defer f.set(StateStopped, nil)
	if f.o.Lease == nil {
		return f.follow(ctx)
	}
	return f.followOwned(ctx)
}

// follow is Run for the process that owns the follower: until ctx ends.
func (f *Follower) follow(ctx context.Context) error {
	log := f.o.Logger.With("follower", f.o.Name)
	f.set(StateStarting, nil)
	backoff := f.o.RetryMin
	for {
		moved, err := f.once(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, eventstore.ErrClosed):
			f.set(StateFailing, err)
			return err
		case errors.Is(err, ErrRestart):
			continue
		case errors.Is(err, ErrLeaseLost) && f.o.Lease != nil:
			log.Warn("follower: a write was fenced: another process owns the follower", "error", err)
			return nil
		}
		if moved {
			backoff = f.o.RetryMin
		}
		f.failures.Add(1)
		f.set(StateFailing, err)
		level := f.o.FailLevel
		if fr, ok := f.step.(FailureRecorder); ok {
			level = fr.Failed(ctx, err)
		}
		log.Log(ctx, level, "follower failed; it resumes from its durable position after a pause",
			"position", f.position.Load(), "retry_in", backoff, "error", err)
		var wake <-chan struct{}
		if f.o.Wake != nil {
			wake = f.o.Wake()
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
		case <-t.C:
		case <-wake:
		}
		t.Stop()
		if ctx.Err() != nil {
			return nil
		}
		backoff = min(2*backoff, f.o.RetryMax)
	}
}

// once resumes, then follows the log live until ctx ends or something fails. It reports whether
// the durable position moved.
func (f *Follower) once(ctx context.Context) (bool, error) {
	from, err := f.step.Resume(ctx)
	if err != nil {
		return false, err
	}
	f.position.Store(from)
	f.set(StateRunning, nil)
	to, err := Pass(ctx, from, func(ctx context.Context) iter.Seq2[eventstore.Event, error] {
		return Subscribe(ctx, f.o.Store, from, f.o.Filter)
	}, f.pacing())
	if err == nil && ctx.Err() == nil {
		err = errSubscriptionEnded
	}
	return to > from, err
}

func (f *Follower) pacing() Pacing {
	return Pacing{BatchSize: f.o.BatchSize, FlushEvery: f.o.FlushEvery, Linger: f.o.Linger, Step: f.step,
		Applied: func(pos uint64, n int) {
			f.position.Store(pos)
			f.events.Add(uint64(n))
		}}
}

// Pacing is how Pass hands events to a step.
type Pacing struct {
	Step       Step
	BatchSize  int
	FlushEvery time.Duration
	// Linger: see Options.Linger.
	Linger time.Duration
	// Applied, when set, learns each durable position a batch reached and its number of events.
	Applied func(pos uint64, n int)
}

type item struct {
	e   eventstore.Event
	err error
}

// Pass applies the events of one read of the log (open returns a Subscribe or a ReadAll after
// from; its ctx ends when Pass returns) batch by batch until the read ends, fails or ctx ends,
// and returns the last durable position. Reading
// runs in its own goroutine, up to a batch ahead, so the next page is fetched while a batch is
// applied, and a batch takes whatever has arrived. A finite read that ends returns nil: the caller
// flushes what it must.
func Pass(ctx context.Context, from uint64, open func(ctx context.Context) iter.Seq2[eventstore.Event, error], p Pacing) (uint64, error) {
	if p.BatchSize <= 0 {
		p.BatchSize = DefaultBatchSize
	}
	rctx, cancel := context.WithCancel(ctx)
	ch := make(chan item, p.BatchSize)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(ch)
		for e, err := range open(rctx) {
			select {
			case ch <- item{e, err}:
			case <-rctx.Done():
				return
			}
			if err != nil || rctx.Err() != nil {
				return
			}
		}
	}()
	defer func() {
		cancel()
		for range ch { //nolint:revive // drain so the reader can end
		}
		<-done
	}()

	pos := from
	flusher, _ := p.Step.(Flusher)
	var tick <-chan time.Time
	if flusher != nil && p.FlushEvery > 0 {
		t := time.NewTicker(p.FlushEvery)
		defer t.Stop()
		tick = t.C
	}
	flush := func() error {
		if flusher == nil {
			return nil
		}
		to, err := flusher.Flush(ctx)
		if to > pos {
			pos = to
			if p.Applied != nil {
				p.Applied(pos, 0)
			}
		}
		return err
	}
	batch := make([]eventstore.Event, 0, p.BatchSize)
	var carried []uint64 // positions handed to the step and not yet durable, in order
	for {
		batch = batch[:0]
		var readErr error
		ended := false
		take := func(it item, ok bool) {
			switch {
			case !ok:
				ended = true
			case it.err != nil:
				readErr = it.err
			default:
				batch = append(batch, it.e)
			}
		}
		select {
		case it, ok := <-ch:
			take(it, ok)
		case <-tick:
			if err := flush(); err != nil {
				return pos, err
			}
			continue
		case <-ctx.Done():
			return pos, ctx.Err()
		}
	drain:
		for !ended && readErr == nil && len(batch) < p.BatchSize {
			select {
			case it, ok := <-ch:
				take(it, ok)
			default:
				break drain
			}
		}
		if p.Linger > 0 && len(batch) > 0 {
			timer := time.NewTimer(p.Linger)
		linger:
			for !ended && readErr == nil && len(batch) < p.BatchSize {
				select {
				case it, ok := <-ch:
					take(it, ok)
				case <-timer.C:
					break linger
				case <-ctx.Done():
					timer.Stop()
					return pos, ctx.Err()
				}
			}
			timer.Stop()
		}
		if len(batch) > 0 {
			to, err := p.Step.Apply(ctx, batch)
			// A step may return before its batch is durable (the relay leaves publishes in
			// flight): those events count once a later position passes them.
			for _, e := range batch {
				carried = append(carried, e.GlobalPosition)
			}
			if to > pos {
				n := 0
				for n < len(carried) && carried[n] <= to {
					n++
				}
				carried = carried[:copy(carried, carried[n:])]
				pos = to
				if p.Applied != nil {
					p.Applied(pos, n)
				}
			}
			if err != nil {
				return pos, err
			}
			select {
			case <-tick: // a flush due while the batch was applied
				if err := flush(); err != nil {
					return pos, err
				}
			default:
			}
		}
		switch {
		case readErr != nil:
			if ctx.Err() != nil {
				return pos, ctx.Err()
			}
			return pos, fmt.Errorf("follower: read the event log after position %d: %w", pos, readErr)
		case ended:
			return pos, ctx.Err()
		}
	}
}
