package projections_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/migrations"
	"github.com/idlog/idlog/projections"
)

// crashing cancels the runtime's context inside a batch transaction now and then, as a process
// killed mid-batch would stop: the transaction never commits.
type crashing struct {
	projections.Projector
	rnd    *rand.Rand
	mu     *sync.Mutex
	cancel context.CancelFunc
	hits   *atomic.Int64
}

func (c crashing) Apply(ctx context.Context, tx *projections.Tx, events []eventstore.Event) error {
	if err := c.Projector.Apply(ctx, tx, events); err != nil {
		return err
	}
	c.mu.Lock()
	crash := c.rnd.IntN(8) == 0
	c.mu.Unlock()
	if crash {
		c.hits.Add(1)
		c.cancel()
		return context.Canceled
	}
	return nil
}

func TestCrashMidBatchEndsLikeACleanRebuild(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		e := b.open(t, envOptions{})
		last, n := workload(t, e.store, 40, 15, 1)

		var hits atomic.Int64
		var mu sync.Mutex
		rnd := rand.New(rand.NewPCG(7, 7))
		for round := 0; ; round++ {
			if round > 500 {
				t.Fatal("the projectors never caught up")
			}
			ctx, cancel := context.WithCancel(context.Background())
			users, activity := e.views()
			r := e.runtime(t, projections.Options{BatchSize: 29},
				crashing{users, rnd, &mu, cancel, &hits}, crashing{activity, rnd, &mu, cancel, &hits})
			if err := r.Start(ctx); err != nil {
				t.Fatal(err)
			}
			// Besides the crashes inside Apply, a kill at any moment; later and later, so that a
			// loaded machine also gets to the end.
			mu.Lock()
			d := time.Duration(20+rnd.IntN(200)+10*round) * time.Millisecond
			mu.Unlock()
			timer := time.AfterFunc(d, cancel)
			wctx, wcancel := context.WithTimeout(ctx, 2*time.Second)
			err := r.WaitFor(wctx, last)
			wcancel()
			timer.Stop()
			cancel()
			r.Stop()
			if err == nil {
				break
			}

		}
		if hits.Load() == 0 {
			t.Fatal("no batch was interrupted; the test proves nothing")
		}
		if got := count(t, e.db, "activity"); got != n {
			t.Fatalf("activity holds %d rows after the crashes, want one per event: %d", got, n)
		}
		crashed := snapshot(t, e.db)

		users, activity := e.views()
		r := e.runtime(t, projections.Options{}, users, activity)
		for _, name := range r.Projectors() {
			if err := r.Rebuild(context.Background(), name); err != nil {
				t.Fatal(err)
			}
		}
		if clean := snapshot(t, e.db); clean != crashed {
			t.Fatalf("read models after %d interrupted batches differ from a clean rebuild:\n%s", hits.Load(), firstDiff(crashed, clean))
		}
		t.Logf("%d events, %d interrupted batches, read models identical to a clean rebuild", n, hits.Load())
	})
}

func firstDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := range min(len(al), len(bl)) {
		if al[i] != bl[i] {
			return fmt.Sprintf("line %d:\n  got  %s\n  want %s", i, al[i], bl[i])
		}
	}
	return fmt.Sprintf("%d lines against %d", len(al), len(bl))
}

func TestRebuildWhileCommandsArriveLosesNothing(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		e := b.open(t, envOptions{})
		_, before := workload(t, e.store, 50, 10, 2)
		users, activity := e.views()
		r := start(t, e.runtime(t, projections.Options{BatchSize: 50}, users, activity))

		// Commands keep arriving during the rebuild.
		stop := make(chan struct{})
		var appended atomic.Int64
		var lastPos atomic.Uint64
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				uid := newUID()
				appendTo(t, e.store, uid, userMeta(uid), registered(uid, strings.ToLower(uid)+"@example.com", ""))
				res := appendTo(t, e.store, uid, userMeta(uid), domain.UsernameChanged{To: fmt.Sprintf("live%d", i)})
				appended.Add(2)
				lastPos.Store(res.LastPosition)
			}
		}()
		// Queries are served throughout, and never go back in time.
		var readErr error
		wg.Add(1)
		go func() {
			defer wg.Done()
			seen := 0
			for {
				select {
				case <-stop:
					return
				default:
				}
				_, total, err := users.List(context.Background(), projections.UserFilter{Limit: 1})
				if err == nil && total < seen {
					err = fmt.Errorf("users total went from %d down to %d", seen, total)
				}
				if err != nil {
					readErr = err
					return
				}
				seen = total
			}
		}()

		// Rebuild from another runtime, as `idlog projections rebuild all` beside `idlog serve`.
		cu, ca := e.views()
		rb := e.runtime(t, projections.Options{}, cu, ca)
		rebuildErr := rb.Rebuild(context.Background(), rb.Projectors()...)
		time.Sleep(100 * time.Millisecond) // let more commands land on the swapped generation
		close(stop)
		wg.Wait()
		for _, err := range []error{rebuildErr, readErr} {
			if err != nil {
				t.Fatal(err)
			}
		}
		if appended.Load() == 0 {
			t.Fatal("no command arrived during the rebuild")
		}
		waitFor(t, r, lastPos.Load())

		total := before + int(appended.Load())
		if got := count(t, e.db, "activity"); got != total {
			t.Fatalf("activity holds %d rows, want %d (one per event)", got, total)
		}
		registeredUsers := 51 + int(appended.Load())/2
		if got := count(t, e.db, "users"); got != registeredUsers {
			t.Fatalf("users holds %d rows, want %d", got, registeredUsers)
		}
		st, err := r.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range st {
			if s.Generation != 2 || s.Rebuild != nil {
				t.Errorf("%s: generation %d, rebuild %+v; want generation 2 live and no rebuild", s.Name, s.Generation, s.Rebuild)
			}
		}
		// The retired generation's rows are gone.
		var stale int
		if err := e.db.Get(&stale, `SELECT (SELECT count(*) FROM users WHERE generation <> 2) + (SELECT count(*) FROM activity WHERE generation <> 2)`); err != nil {
			t.Fatal(err)
		}
		if stale != 0 {
			t.Errorf("%d rows of the retired generation are left", stale)
		}

		live := snapshot(t, e.db)
		r.Stop()
		// One projector at a time this time: the reads of the log are not shared.
		for _, name := range rb.Projectors() {
			if err := rb.Rebuild(context.Background(), name); err != nil {
				t.Fatal(err)
			}
		}
		if clean := snapshot(t, e.db); clean != live {
			t.Fatalf("read models after a rebuild under load differ from a clean rebuild:\n%s", firstDiff(live, clean))
		}
		t.Logf("%d events before, %d appended during the rebuild", before, appended.Load())
	})
}

func TestLateCommitDoesNotLoseARow(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		slow := newUID()
		held, release := make(chan struct{}), make(chan struct{})
		e := b.open(t, envOptions{beforeCommit: func(_ context.Context, a eventstore.Append) {
			if a.Stream == domain.UserStreamPrefix+slow {
				close(held)
				<-release
			}
		}})
		users, activity := e.views()
		r := start(t, e.runtime(t, projections.Options{}, users, activity))

		// The slow append takes its position first and commits last.
		slowDone := make(chan eventstore.AppendResult)
		go func() {
			slowDone <- appendTo(t, e.store, slow, userMeta(slow), registered(slow, "slow@example.com", ""))
		}()
		<-held
		fast := newUID()
		fastDone := make(chan eventstore.AppendResult)
		go func() {
			fastDone <- appendTo(t, e.store, fast, userMeta(fast), registered(fast, "fast@example.com", ""))
		}()
		var fastRes eventstore.AppendResult
		select {
		case fastRes = <-fastDone:
			// Postgres commits the later append first. Its event must not become visible in a way
			// that lets the projectors pass the slow one's position for good.
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			err := r.WaitFor(ctx, fastRes.LastPosition)
			cancel()
			if err == nil {
				if _, err := users.ByUID(context.Background(), slow); !errors.Is(err, projections.ErrNotFound) {
					t.Fatalf("slow user seen before its commit: %v", err)
				}
				t.Log("the projectors passed the late append's position before it committed")
			}
		case <-time.After(300 * time.Millisecond):
			// SQLite serialises writers: the later append waits for the held one.
		}
		close(release)
		slowRes := <-slowDone
		if fastRes.LastPosition == 0 {
			fastRes = <-fastDone
		}
		waitFor(t, r, max(slowRes.LastPosition, fastRes.LastPosition))
		for _, uid := range []string{slow, fast} {
			if _, err := users.ByUID(context.Background(), uid); err != nil {
				t.Errorf("user %s: %v", uid, err)
			}
			if _, n, err := activity.List(context.Background(), projections.ActivityFilter{UID: uid}); err != nil || n != 1 {
				t.Errorf("activity of %s: %d rows, %v; want 1", uid, n, err)
			}
		}
	})
}

func TestReadYourWrites(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		e := b.open(t, envOptions{})
		users, activity := e.views()
		r := start(t, e.runtime(t, projections.Options{}, users, activity))
		uid := newUID()
		waitFor(t, r, appendTo(t, e.store, uid, userMeta(uid), registered(uid, "ryw@example.com", "")).LastPosition)
		for i := range 100 {
			name := fmt.Sprintf("name%03d", i)
			res := appendTo(t, e.store, uid, userMeta(uid), domain.UsernameChanged{To: name})
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := r.WaitFor(ctx, res.LastPosition)
			cancel()
			if err != nil {
				t.Fatalf("write %d: %v", i, err)
			}
			u, err := users.ByUID(context.Background(), uid)
			if err != nil || u.Username != name {
				t.Fatalf("write %d: read %q, %v; want username %q", i, u.Username, err, name)
			}
			acts, _, err := activity.List(context.Background(), projections.ActivityFilter{UID: uid, Limit: 1})
			if err != nil || len(acts) != 1 || acts[0].ID != int64(res.LastPosition) {
				t.Fatalf("write %d: newest activity %+v, %v; want the row of position %d", i, acts, err, res.LastPosition)
			}
		}
	})
}

func TestWaitForEndsWithItsContext(t *testing.T) {
	t.Parallel()
	e := openSQLite(t, envOptions{})
	users, _ := e.views()
	r := start(t, e.runtime(t, projections.Options{}, users))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := r.WaitFor(ctx, 1<<40); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitFor past the log's end = %v, want a deadline error", err)
	}
	r.Stop()
	if err := r.WaitFor(context.Background(), 1<<40); !errors.Is(err, projections.ErrStopped) {
		t.Fatalf("WaitFor on a stopped runtime = %v, want ErrStopped", err)
	}
}

// flaky fails at the events of one stream while failing is set: with FailedAt, or with a plain
// error for the whole batch, which the runtime must narrow down to the event itself.
// flaky records each event it applies in flaky_applied, in its transaction: a primary key
// refuses an event applied twice, and the rows count what was committed (a batch may be tried in
// a transaction that rolls back, with other projectors' batches).
type flaky struct {
	stream  string
	failing *atomic.Bool
	plain   bool
}

func createFlakyApplied(t *testing.T, e env) {
	t.Helper()
	if _, err := e.db.Exec(`CREATE TABLE flaky_applied (name TEXT NOT NULL, position BIGINT NOT NULL, PRIMARY KEY (name, position))`); err != nil {
		t.Fatal(err)
	}
}

func flakyApplied(t *testing.T, e env, name string) int64 {
	t.Helper()
	var n int64
	if err := e.db.Get(&n, e.db.Rebind(`SELECT count(*) FROM flaky_applied WHERE name = ?`), name); err != nil {
		t.Fatal(err)
	}
	return n
}

func (f flaky) Name() string {
	if f.plain {
		return "flaky_plain"
	}
	return "flaky"
}
func (f flaky) Interest() projections.Interest { return projections.Interest{} }
func (f flaky) Tables() []string               { return nil }
func (f flaky) Apply(ctx context.Context, tx *projections.Tx, events []eventstore.Event) error {
	for _, e := range events {
		if e.StreamID == f.stream && f.failing.Load() {
			if f.plain {
				return errors.New("poisoned batch")
			}
			return projections.FailedAt(e, errors.New("poisoned event"))
		}
	}
	for _, e := range events {
		if _, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO flaky_applied (name, position) VALUES (?, ?)`), f.Name(), int64(e.GlobalPosition)); err != nil {
			return err
		}
	}
	return nil
}

func TestFailingProjectorRetriesAndDoesNotBlockOthers(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		e := b.open(t, envOptions{})
		poison := newUID()
		var failing atomic.Bool
		failing.Store(true)
		createFlakyApplied(t, e)
		users, _ := e.views()
		reg := prometheus.NewRegistry()
		r := e.runtime(t, projections.Options{Metrics: reg, BatchSize: 500},
			users, flaky{stream: domain.UserStreamPrefix + poison, failing: &failing},
			flaky{stream: domain.UserStreamPrefix + poison, failing: &failing, plain: true})

		before, _ := workload(t, e.store, 5, 2, 3)
		bad := appendTo(t, e.store, poison, userMeta(poison), registered(poison, "poison@example.com", ""))
		after := newUID()
		last := appendTo(t, e.store, after, userMeta(after), registered(after, "after@example.com", ""))
		start(t, r)

		// users goes past the poisoned event while both flaky projectors stop just before it.
		deadline := time.Now().Add(10 * time.Second)
		for {
			_, err := users.ByUID(context.Background(), after)
			st, serr := r.Status(context.Background())
			if serr != nil {
				t.Fatal(serr)
			}
			if err == nil && st[1].State == projections.StateFailing && st[2].State == projections.StateFailing {
				for _, s := range st[1:] {
					if s.Position != before || !strings.Contains(s.LastError, "poison") {
						t.Fatalf("%s: checkpoint %d, last error %q; want it stopped at %d, before the poisoned event at %d", s.Name, s.Position, s.LastError, before, bad.LastPosition)
					}
				}
				if st[0].State == projections.StateFailing || st[0].Position < last.LastPosition {
					t.Fatalf("users was held back: %+v", st[0])
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("users did not pass the poisoned event or the flaky ones did not fail: user %v, status %+v", err, st)
			}
			time.Sleep(10 * time.Millisecond)
		}
		// Retries go on, with backoff, and are counted.
		time.Sleep(200 * time.Millisecond)
		if got := counterValue(t, reg, "idlog_projection_failures_total", "flaky"); got < 2 {
			t.Errorf("failures_total{flaky} = %v, want retries counted", got)
		}
		// The cause goes away: they go on from where they stopped, and nothing is applied twice.
		failing.Store(false)
		waitFor(t, r, last.LastPosition)
		st, err := r.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range st {
			if s.State != projections.StateLive || s.LastError != "" {
				t.Errorf("%s after recovery: %+v", s.Name, s)
			}
		}
		_, total := workloadSize(5, 2)
		for _, got := range []int64{flakyApplied(t, e, "flaky"), flakyApplied(t, e, "flaky_plain")} {
			if got != int64(total+2) {
				t.Errorf("applied %d events, want each of the %d exactly once", got, total+2)
			}
		}
	})
}

// workloadSize is how many events workload(users, perUser) appends.
func workloadSize(users, perUser int) (int, int) { return users, 1 + users + users*perUser }

func counterValue(t *testing.T, reg *prometheus.Registry, name, projector string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "projector" && l.GetValue() == projector {
					if c := m.GetCounter(); c != nil {
						return c.GetValue()
					}
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	return 0
}

// skipping counts the events it is given and skips unknown types.
type skipping struct{ applied *atomic.Int64 }

func (skipping) Name() string { return "skipping" }
func (skipping) Interest() projections.Interest {
	return projections.Interest{StreamPrefix: domain.UserStreamPrefix, SkipUnknown: true}
}
func (skipping) Tables() []string { return nil }
func (s skipping) Apply(_ context.Context, _ *projections.Tx, events []eventstore.Event) error {
	s.applied.Add(int64(len(events)))
	return nil
}

func TestUnknownEventTypeStopsUnlessSkipped(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		e := b.open(t, envOptions{})
		users, activity := e.views()
		var applied atomic.Int64
		reg := prometheus.NewRegistry()
		r := start(t, e.runtime(t, projections.Options{Metrics: reg}, users, activity, skipping{&applied}))

		uid := newUID()
		known := appendTo(t, e.store, uid, userMeta(uid), registered(uid, "known@example.com", ""))
		// A type of a newer build, in a user stream and in another stream.
		for _, stream := range []string{domain.UserStreamPrefix + uid, "other-stream"} {
			if _, err := e.store.Append(context.Background(), eventstore.Append{Stream: stream, Expected: eventstore.Any,
				Events: []eventstore.NewEvent{{Type: "FromTheFuture", SchemaVersion: 1, Data: []byte(`{}`)}}}); err != nil {
				t.Fatal(err)
			}
		}
		last := appendTo(t, e.store, uid, userMeta(uid), domain.UsernameChanged{To: "later"})

		waitForState := func(name, state string) projections.Status {
			deadline := time.Now().Add(10 * time.Second)
			for {
				st, err := r.Status(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				for _, s := range st {
					if s.Name == name && s.State == state && (state != projections.StateLive || s.Position >= last.LastPosition) {
						return s
					}
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s never became %s: %+v", name, state, st)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
		for _, name := range []string{"users", "activity"} {
			s := waitForState(name, projections.StateFailing)
			if s.Position != known.LastPosition || !strings.Contains(s.LastError, "FromTheFuture") {
				var rows []struct {
					Name       string `db:"name"`
					Generation int64  `db:"generation"`
					Position   int64  `db:"position"`
				}
				err := e.db.Select(&rows, `SELECT name, generation, position FROM projection_checkpoints`)
				t.Errorf("%s: stopped at %d with %q; want it at %d, naming the unknown type (status %+v; checkpoints %+v, %v)",
					name, s.Position, s.LastError, known.LastPosition, s, rows, err)
			}
		}
		waitForState("skipping", projections.StateLive)
		if got := applied.Load(); got != 2 {
			t.Errorf("the skipping projector applied %d events, want the 2 known ones", got)
		}
		if got := counterValue(t, reg, "idlog_projection_unknown_events_skipped_total", "skipping"); got != 1 {
			t.Errorf("unknown_events_skipped_total{skipping} = %v, want 1 (the other stream is out of its scope)", got)
		}
		if u, _ := users.ByUID(context.Background(), uid); u.Username == "later" {
			t.Error("users applied an event behind the unknown one")
		}
	})
}

func TestStatusReportsLag(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		e := b.open(t, envOptions{})
		last, n := workload(t, e.store, 3, 2, 4)
		users, activity := e.views()
		r := e.runtime(t, projections.Options{}, users, activity)
		st, err := r.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range st {
			if s.Running || s.Position != 0 || s.LagEvents != int64(n) || s.LagSeconds <= 0 {
				t.Errorf("before start: %+v; want position 0 and a lag of %d events", s, n)
			}
		}
		start(t, r)
		waitFor(t, r, last)
		st, err = r.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range st {
			if !s.Running || s.Position != last || s.LagEvents != 0 || s.LagSeconds != 0 || s.State != projections.StateLive || s.Generation != 1 {
				t.Errorf("caught up: %+v; want live at %d with no lag", s, last)
			}
		}
	})
}

func TestNewChecksItsInput(t *testing.T) {
	t.Parallel()
	e := openSQLite(t, envOptions{})
	users, activity := e.views()
	base := projections.Options{DB: e.db, Dialect: e.dialect, Store: e.store}
	cases := map[string]struct {
		o  projections.Options
		ps []projections.Projector
	}{
		"Options.DB is nil":    {projections.Options{Dialect: e.dialect, Store: e.store}, []projections.Projector{users}},
		"Options.Store is nil": {projections.Options{DB: e.db, Dialect: e.dialect}, []projections.Projector{users}},
		`dialect "mysql"`:      {projections.Options{DB: e.db, Dialect: "mysql", Store: e.store}, []projections.Projector{users}},
		"batch size (-1)":      {func() projections.Options { o := base; o.BatchSize = -1; return o }(), []projections.Projector{users}},
		"retry min (1s)": {func() projections.Options {
			o := base
			o.RetryMin, o.RetryMax = time.Second, time.Millisecond
			return o
		}(), []projections.Projector{users}},
		"no projector":                     {base, nil},
		`two projectors are named "users"`: {base, []projections.Projector{users, projections.NewUsersView(e.db, e.dialect)}},
	}
	for want, c := range cases {
		if _, err := projections.New(c.o, c.ps...); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("New: %v; want an error naming %s", err, want)
		}
	}
	r, err := projections.New(base, users, activity)
	if err != nil {
		t.Fatal(err)
	}
	for _, names := range [][]string{{"nope"}, {"users", "nope"}, nil} {
		if err := r.Rebuild(context.Background(), names...); !errors.Is(err, projections.ErrUnknownProjector) {
			t.Errorf("Rebuild(%q) = %v, want ErrUnknownProjector", names, err)
		}
	}
}

func TestNewerRebuildSupersedesOlder(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		e := b.open(t, envOptions{})
		last, n := workload(t, e.store, 100, 10, 5)
		users, activity := e.views()
		r := start(t, e.runtime(t, projections.Options{}, users, activity))
		waitFor(t, r, last)
		want := snapshot(t, e.db)

		// A slow rebuild (one event per transaction) is overtaken by a second one.
		su, sa := e.views()
		slow := e.runtime(t, projections.Options{BatchSize: 1, RebuildBatchSize: 1}, su, sa)
		slowErr := make(chan error, 1)
		go func() { slowErr <- slow.Rebuild(context.Background(), "activity") }()
		deadline := time.Now().Add(10 * time.Second)
		for {
			st, err := r.Status(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if rb := st[1].Rebuild; rb != nil && rb.Position > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the slow rebuild made no progress: %+v", st)
			}
			time.Sleep(5 * time.Millisecond)
		}
		fu, fa := e.views()
		if err := e.runtime(t, projections.Options{}, fu, fa).Rebuild(context.Background(), "activity"); err != nil {
			t.Fatal(err)
		}
		if err := <-slowErr; !errors.Is(err, projections.ErrSuperseded) {
			t.Fatalf("the overtaken rebuild ended with %v, want ErrSuperseded", err)
		}
		st, err := r.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if a := st[1]; a.Generation != 3 || a.Rebuild != nil || a.Position != last {
			t.Errorf("activity after the second rebuild: %+v; want generation 3 live at %d", a, last)
		}
		if got := snapshot(t, e.db); got != want {
			t.Fatalf("read models after the rebuilds differ:\n%s", firstDiff(got, want))
		}
		var stale int
		if err := e.db.Get(&stale, `SELECT count(*) FROM activity WHERE generation <> 3`); err != nil {
			t.Fatal(err)
		}
		if stale != 0 || count(t, e.db, "activity") != n {
			t.Errorf("%d rows of other generations left, %d live rows; want 0 and %d", stale, count(t, e.db, "activity"), n)
		}
		if e.dialect == migrations.Postgres {
			// activity is partitioned by generation (migration 00240): the retired generations'
			// tables, the overtaken rebuild's detached one among them, are gone, and the live one is
			// a partition.
			var tables []string
			if err := e.db.Select(&tables, `SELECT c.relname || CASE WHEN i.inhrelid IS NULL THEN ' detached' ELSE '' END
				FROM pg_class c LEFT JOIN pg_inherits i ON i.inhrelid = c.oid
				WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r' AND c.relname LIKE 'activity%'
				ORDER BY 1`); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(tables, []string{"activity_g3"}) {
				t.Errorf("activity's tables: %q, want only activity_g3, attached", tables)
			}
		}
	})
}
