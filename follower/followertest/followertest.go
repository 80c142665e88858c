// Package followertest is the conformance suite of the follower engine: followertest.Run(t,
// backend) proves, on one event store, that a follower sees every event exactly once, in order,
// across late commits, failures, crashes and a change of owner.
package followertest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/eventstore/eventstoretest"
	"github.com/idlog/idlog/follower"
)

// Backend opens stores and leases for the suite.
type Backend struct {
	// NewStore returns a store over fresh, empty storage of its own, honouring h.BeforeCommit.
	NewStore func(t *testing.T, h eventstoretest.Hooks) eventstore.Store
	// NewLease, when set, returns a lease for the process named owner, over storage shared by
	// every lease the same test makes (the store's database). Without it failover is skipped.
	NewLease func(t *testing.T, s eventstore.Store, owner string) follower.Lease
	// TailSize, when set, sets how many events the followers' shared tail keeps, and returns
	// the func that restores it: the shared-read test shrinks it so that followers fall behind it.
	TailSize func(n int) (restore func())
}

// Run runs the suite.
func Run(t *testing.T, b Backend) {
	tests := []struct {
		name string
		fn   func(*testing.T, Backend)
	}{
		{"NoGapNoDuplicateUnderLateCommits", testNoGapNoDuplicate},
		{"HeldTransactionHoldsBackNothingLost", testHeldTransaction},
		{"FailuresResumeFromTheDurablePosition", testFailuresResume},
		{"CrashedProcessResumes", testCrashResumes},
		{"FailoverToAStandby", testFailover},
		{"FollowersShareOneRead", testSharedRead},
		{"SharedReadKeepsPaceWithItsReaders", testSharedReadPace},
		{"StalledLeaderHoldsNoOneBack", testStalledLeader},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, b)
		})
	}
}

// ledger is the durable state of a step: what it applied and its position, changed together,
// as a projection writes its read model and checkpoint in one transaction.
type ledger struct {
	mu      sync.Mutex
	pos     uint64
	applied []eventstore.Event
	replays int // events delivered at or below the durable position
	changed chan struct{}
}

func newLedger() *ledger { return &ledger{changed: make(chan struct{}, 1)} }

func (l *ledger) apply(batch []eventstore.Event) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range batch {
		if e.GlobalPosition <= l.pos {
			l.replays++
			continue
		}
		l.applied = append(l.applied, e)
		l.pos = e.GlobalPosition
	}
	select {
	case l.changed <- struct{}{}:
	default:
	}
	return l.pos
}

func (l *ledger) snapshot() (uint64, []eventstore.Event, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.pos, append([]eventstore.Event(nil), l.applied...), l.replays
}

// step applies batches to a ledger. fail, when set, is asked before each batch how many of its
// events to apply before failing (-1: none fail).
type step struct {
	l    *ledger
	fail func(n int) int
}

func (s *step) Resume(context.Context) (uint64, error) {
	pos, _, _ := s.l.snapshot()
	return pos, nil
}

var errInjected = errors.New("followertest: injected failure")

func (s *step) Apply(_ context.Context, batch []eventstore.Event) (uint64, error) {
	if s.fail != nil {
		if k := s.fail(len(batch)); k >= 0 && k < len(batch) {
			return s.l.apply(batch[:k]), errInjected
		}
	}
	return s.l.apply(batch), nil
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newFollower(t *testing.T, s eventstore.Store, st follower.Step, o follower.Options) *follower.Follower {
	t.Helper()
	o.Store = s
	if o.Name == "" {
		o.Name = "conformance"
	}
	o.RetryMin, o.RetryMax = time.Millisecond, 20*time.Millisecond
	f, err := follower.New(o, st)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// run runs f until the returned stop is called, which waits for it.
func run(ctx context.Context, t *testing.T, f *follower.Follower) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// appendMany appends n events from writers goroutines, and returns every stored event.
func appendMany(ctx context.Context, t *testing.T, s eventstore.Store, writers, n int) {
	t.Helper()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			stream := fmt.Sprintf("user-%s", uuid.NewString()[:8])
			for i := range n {
				data, _ := json.Marshal(map[string]int{"w": w, "i": i})
				_, err := s.Append(ctx, eventstore.Append{Stream: stream, Expected: eventstore.Any,
					Events: []eventstore.NewEvent{{Type: "Conformance", SchemaVersion: 1, Data: data}}})
				if err != nil {
					t.Errorf("append: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func readAll(ctx context.Context, t *testing.T, s eventstore.Store) []eventstore.Event {
	t.Helper()
	var all []eventstore.Event
	for e, err := range s.ReadAll(ctx, 0, eventstore.Filter{}) {
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, e)
	}
	return all
}

// waitApplied waits until the log holds want events and the ledger's position reached the last.
func waitApplied(ctx context.Context, t *testing.T, s eventstore.Store, l *ledger, want int) {
	t.Helper()
	all := readAll(ctx, t, s)
	if len(all) != want {
		t.Fatalf("the log holds %d events, want %d", len(all), want)
	}
	last := all[len(all)-1].GlobalPosition
	for {
		pos, got, _ := l.snapshot()
		if pos >= last {
			return
		}
		select {
		case <-l.changed:
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			t.Fatalf("the follower applied %d of %d events, up to position %d of %d", len(got), want, pos, last)
		}
	}
}

// checkExactlyOnce asserts that the ledger holds the log, each event once, in order, and that no
// event was delivered again below the durable position.
func checkExactlyOnce(ctx context.Context, t *testing.T, s eventstore.Store, l *ledger) {
	t.Helper()
	all := readAll(ctx, t, s)
	_, got, replays := l.snapshot()
	if replays != 0 {
		t.Errorf("%d events were delivered again at or below the durable position", replays)
	}
	if len(got) != len(all) {
		t.Fatalf("applied %d events, the log holds %d", len(got), len(all))
	}
	for i := range all {
		if got[i].ID != all[i].ID || got[i].GlobalPosition != all[i].GlobalPosition {
			t.Fatalf("event %d: applied %s at %d, the log has %s at %d", i, got[i].ID, got[i].GlobalPosition, all[i].ID, all[i].GlobalPosition)
		}
	}
}

// lateHooks holds some appends' transactions open for a random delay, so that events commit late
// with positions below events already committed.
func lateHooks() eventstoretest.Hooks {
	return eventstoretest.Hooks{BeforeCommit: func(ctx context.Context, _ eventstore.Append) {
		if rand.IntN(4) == 0 {
			select {
			case <-time.After(time.Duration(rand.IntN(30)) * time.Millisecond):
			case <-ctx.Done():
			}
		}
	}}
}

func testNoGapNoDuplicate(t *testing.T, b Backend) {
	ctx := testCtx(t)
	s := b.NewStore(t, lateHooks())
	l := newLedger()
	run(ctx, t, newFollower(t, s, &step{l: l}, follower.Options{BatchSize: 7}))
	appendMany(ctx, t, s, 8, 25)
	waitApplied(ctx, t, s, l, 200)
	checkExactlyOnce(ctx, t, s, l)
}

// testHeldTransaction holds one append open while others commit: the follower must not pass it.
func testHeldTransaction(t *testing.T, b Backend) {
	ctx := testCtx(t)
	release := make(chan struct{})
	held := make(chan struct{})
	var once sync.Once
	s := b.NewStore(t, eventstoretest.Hooks{BeforeCommit: func(ctx context.Context, a eventstore.Append) {
		if a.Stream == "user-held" {
			once.Do(func() { close(held) })
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
	}})
	l := newLedger()
	run(ctx, t, newFollower(t, s, &step{l: l}, follower.Options{}))
	heldDone := make(chan error, 1)
	go func() {
		_, err := s.Append(ctx, eventstore.Append{Stream: "user-held", Expected: eventstore.Any,
			Events: []eventstore.NewEvent{{Type: "Held", SchemaVersion: 1, Data: []byte(`{}`)}}})
		heldDone <- err
	}()
	<-held
	// SQLite writes one transaction at a time: nothing else can commit while one is held.
	others := make(chan struct{})
	go func() { defer close(others); appendMany(ctx, t, s, 2, 5) }()
	select {
	case <-others:
	case <-time.After(300 * time.Millisecond):
	}
	close(release)
	if err := <-heldDone; err != nil {
		t.Fatal(err)
	}
	<-others
	waitApplied(ctx, t, s, l, 11)
	checkExactlyOnce(ctx, t, s, l)
}

func testFailuresResume(t *testing.T, b Backend) {
	ctx := testCtx(t)
	s := b.NewStore(t, lateHooks())
	l := newLedger()
	var mu sync.Mutex
	failures := 0
	st := &step{l: l, fail: func(n int) int {
		mu.Lock()
		defer mu.Unlock()
		if rand.IntN(3) == 0 {
			failures++
			return rand.IntN(n) // part of the batch is applied, then it fails
		}
		return -1
	}}
	f := newFollower(t, s, st, follower.Options{BatchSize: 5})
	run(ctx, t, f)
	appendMany(ctx, t, s, 4, 25)
	waitApplied(ctx, t, s, l, 100)
	checkExactlyOnce(ctx, t, s, l)
	mu.Lock()
	defer mu.Unlock()
	if failures == 0 {
		t.Fatal("no failure was injected")
	}
	if got := f.Status().Failures; got == 0 {
		t.Errorf("Status().Failures = 0 after %d injected failures", failures)
	}
}

// testCrashResumes stops followers at random moments while events arrive; each new one resumes
// from the durable position the last one left.
func testCrashResumes(t *testing.T, b Backend) {
	ctx := testCtx(t)
	s := b.NewStore(t, lateHooks())
	l := newLedger()
	writing := make(chan struct{})
	go func() { defer close(writing); appendMany(ctx, t, s, 4, 30) }()
	for i := 0; ; i++ {
		stop := run(ctx, t, newFollower(t, s, &step{l: l}, follower.Options{BatchSize: 3}))
		select {
		case <-time.After(time.Duration(5+rand.IntN(20)) * time.Millisecond):
			stop()
			continue
		case <-writing:
		}
		waitApplied(ctx, t, s, l, 120)
		stop()
		break
	}
	checkExactlyOnce(ctx, t, s, l)
}

// testFailover runs two processes' followers on one lease: one follows, the other stands by and
// takes over when the owner stops.
func testFailover(t *testing.T, b Backend) {
	if b.NewLease == nil {
		t.Skip("the backend has no lease")
	}
	ctx := testCtx(t)
	s := b.NewStore(t, lateHooks())
	l := newLedger()
	fa := newFollower(t, s, &step{l: l}, follower.Options{Lease: b.NewLease(t, s, "a"), BatchSize: 4})
	fb := newFollower(t, s, &step{l: l}, follower.Options{Lease: b.NewLease(t, s, "b"), BatchSize: 4})
	stopA := run(ctx, t, fa)
	stopB := run(ctx, t, fb)
	appendMany(ctx, t, s, 2, 10)
	waitApplied(ctx, t, s, l, 20)
	owner, standby, stopOwner := fa, fb, stopA
	if fb.Status().State == follower.StateRunning {
		owner, standby, stopOwner = fb, fa, stopB
	}
	if st := owner.Status(); st.State != follower.StateRunning {
		t.Fatalf("owner state %q, want %q", st.State, follower.StateRunning)
	}
	// The standby names the owner once it has looked at the lease.
	for st := standby.Status(); st.State != follower.StateStandby || st.Owner != owner.Status().Owner; st = standby.Status() {
		select {
		case <-ctx.Done():
			t.Fatalf("standby status %+v: want %q naming owner %q", st, follower.StateStandby, owner.Status().Owner)
		case <-time.After(10 * time.Millisecond):
		}
	}
	stopOwner()
	appendMany(ctx, t, s, 2, 10)
	waitApplied(ctx, t, s, l, 40)
	if st := standby.Status(); st.State != follower.StateRunning || st.Token <= owner.Status().Token {
		t.Fatalf("standby after the owner stopped: %+v; want running with a higher token", st)
	}
	checkExactlyOnce(ctx, t, s, l)
}

// countingStore counts the events its Subscribe reads yield.
type countingStore struct {
	eventstore.Store
	read atomic.Int64
}

func (c *countingStore) Subscribe(ctx context.Context, after uint64, f eventstore.Filter) iter.Seq2[eventstore.Event, error] {
	return func(yield func(eventstore.Event, error) bool) {
		for e, err := range c.Store.Subscribe(ctx, after, f) {
			if err == nil {
				c.read.Add(1)
			}
			if !yield(e, err) {
				return
			}
		}
	}
}

// testSharedReadPace: the shared read of the log stays a window ahead of its leading reader. A
// reader that stops taking events stops it; one that takes every event from the start gets each
// read from the store once, never falling behind a window that the read filled too fast for it.
func testSharedReadPace(t *testing.T, b Backend) {
	if b.TailSize == nil {
		t.Skip("the backend cannot shrink the shared tail")
	}
	const window, total, taken = 8, 200, 5
	defer b.TailSize(window)()
	ctx := testCtx(t)
	s := &countingStore{Store: b.NewStore(t, eventstoretest.Hooks{})}
	appendMany(ctx, t, s, 4, total/4)

	paused, resume := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		n := 0
		for _, err := range follower.Subscribe(ctx, s, 0, eventstore.Filter{}) {
			if err != nil {
				done <- err
				return
			}
			if n++; n == taken {
				close(paused)
				<-resume
			}
			if n == total {
				done <- nil
				return
			}
		}
	}()
	<-paused
	time.Sleep(300 * time.Millisecond) // ample time for a read that does not wait to read it all
	// The reader took at most two windows (a chunk), and the read stays a window ahead.
	if read := s.read.Load(); read > taken+4*window {
		t.Errorf("a reader that took %d events left the shared read to read %d of %d: want at most %d", taken, read, total, taken+4*window)
	}
	close(resume)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
	if read := s.read.Load(); read != total {
		t.Errorf("a reader that took the %d events from the start had %d read from the store, want each once", total, read)
	}
}

// testStalledLeader: the shared read waits for its leading reader, yet a leader that stops taking
// events holds back no other reader: one that starts behind it reads every event, in order, past
// it and on to those appended later.
func testStalledLeader(t *testing.T, b Backend) {
	if b.TailSize == nil {
		t.Skip("the backend cannot shrink the shared tail")
	}
	const window, total = 8, 100
	defer b.TailSize(window)()
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel() // the readers end before the store closes
	s := b.NewStore(t, eventstoretest.Hooks{})
	appendMany(ctx, t, s, 4, total/4)

	stalled, release := make(chan struct{}), make(chan struct{})
	defer close(release)
	go func() {
		for range follower.Subscribe(ctx, s, 0, eventstore.Filter{}) {
			close(stalled)
			<-release
			return
		}
	}()
	<-stalled

	want := readAll(ctx, t, s)
	got := make(chan eventstore.Event)
	go func() {
		for e, err := range follower.Subscribe(ctx, s, 0, eventstore.Filter{}) {
			if err != nil {
				if ctx.Err() == nil {
					t.Error(err)
				}
				return
			}
			select {
			case got <- e:
			case <-ctx.Done():
				return
			}
		}
	}()
	next := func() eventstore.Event {
		select {
		case e := <-got:
			return e
		case <-ctx.Done():
			t.Fatalf("the second reader is held back: %v", ctx.Err())
			return eventstore.Event{}
		}
	}
	for i, w := range want {
		if e := next(); e.GlobalPosition != w.GlobalPosition {
			t.Fatalf("event %d of the second reader at position %d, want %d", i, e.GlobalPosition, w.GlobalPosition)
		}
	}
	appendMany(ctx, t, s, 1, 1)
	if e := next(); e.GlobalPosition <= want[len(want)-1].GlobalPosition {
		t.Fatalf("after the append the second reader got position %d again", e.GlobalPosition)
	}
}

// testSharedRead runs followers of one store that start at different times, with a shared tail
// smaller than the gaps between them, under late commits: each applies the log exactly once, in
// order. Then, all caught up, the log grows one event at a time: the store reads each event about
// once for all of them, not once per follower.
func testSharedRead(t *testing.T, b Backend) {
	ctx := testCtx(t)
	if b.TailSize != nil {
		defer b.TailSize(8)()
	}
	s := &countingStore{Store: b.NewStore(t, lateHooks())}
	const followers = 5
	ledgers := make([]*ledger, followers)
	for i := range followers {
		appendMany(ctx, t, s, 3, 10)
		ledgers[i] = newLedger()
		run(ctx, t, newFollower(t, s, &step{l: ledgers[i]}, follower.Options{Name: fmt.Sprintf("shared-%d", i), BatchSize: 4}))
	}
	appendMany(ctx, t, s, 4, 20)
	total := followers*3*10 + 4*20
	for _, l := range ledgers {
		waitApplied(ctx, t, s, l, total)
		checkExactlyOnce(ctx, t, s, l)
	}

	const live = 40
	before := s.read.Load()
	for range live {
		appendMany(ctx, t, s, 1, 1)
		total++
		for _, l := range ledgers {
			waitApplied(ctx, t, s, l, total)
		}
	}
	if read := s.read.Load() - before; read > 2*live {
		t.Errorf("%d followers read %d events from the store for %d appended one at a time: want at most %d, one shared read", followers, read, live, 2*live)
	}
	for _, l := range ledgers {
		checkExactlyOnce(ctx, t, s, l)
	}
}
