package attempts_test

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq"

	"github.com/idlog/idlog/attempts"
	"github.com/idlog/idlog/eventstore/eventstoretest"
	"github.com/idlog/idlog/eventstore/postgres"
	"github.com/idlog/idlog/eventstore/sqlite"
	"github.com/idlog/idlog/migrations"
	"github.com/idlog/idlog/projections"
)

// database opens the event store's database of a backend (which migrates it) and returns a
// writable pool on it.
func database(t *testing.T, backend string) (*sqlx.DB, migrations.Dialect) {
	t.Helper()
	ctx := context.Background()
	switch backend {
	case "sqlite":
		path := filepath.Join(t.TempDir(), "idlog.db")
		s, err := sqlite.Open(ctx, sqlite.Options{Path: path})
		if err != nil {
			t.Fatal(err)
		}
		db, err := projections.OpenSQLite(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close(); s.Close() })
		return db, migrations.SQLite
	default:
		dsn := eventstoretest.PostgresSchema(t)
		s, err := postgres.Open(ctx, postgres.Options{DSN: dsn})
		if err != nil {
			t.Fatal(err)
		}
		db, err := sqlx.Open("postgres", dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close(); s.Close() })
		return db, migrations.Postgres
	}
}

// eachBackend runs fn on SQLite, and on PostgreSQL when IDLOG_TEST_DATABASE_URL is set.
func eachBackend(t *testing.T, fn func(t *testing.T, db *sqlx.DB, d migrations.Dialect)) {
	backends := []string{"sqlite"}
	if os.Getenv(eventstoretest.PostgresEnv) != "" {
		backends = append(backends, "postgres")
	} else {
		t.Log("Postgres SKIPPED: set IDLOG_TEST_DATABASE_URL to run these tests on it too")
	}
	for _, b := range backends {
		t.Run(b, func(t *testing.T) {
			t.Parallel()
			db, d := database(t, b)
			fn(t, db, d)
		})
	}
}

func newLimiter(t *testing.T, db *sqlx.DB, d migrations.Dialect) *attempts.Limiter {
	t.Helper()
	l, err := attempts.New(attempts.Options{DB: db, Dialect: d})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

var policy = attempts.Policy{Free: 3, Delay: time.Minute, MaxDelay: 4 * time.Minute, Forget: time.Hour}

func try(t *testing.T, l *attempts.Limiter, now time.Time, c ...attempts.Counter) time.Duration {
	t.Helper()
	wait, err := l.Try(context.Background(), now, c...)
	if err != nil {
		t.Fatal(err)
	}
	return wait
}

// fail is an attempt that fails, if admitted; it returns the wait if not.
func fail(t *testing.T, l *attempts.Limiter, now time.Time, c ...attempts.Counter) time.Duration {
	t.Helper()
	wait := try(t, l, now, c...)
	if wait == 0 {
		if err := l.Done(context.Background(), now, true, c...); err != nil {
			t.Fatal(err)
		}
	}
	return wait
}

func TestProgressiveDelay(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, db *sqlx.DB, d migrations.Dialect) {
		l := newLimiter(t, db, d)
		c := attempts.Counter{Kind: "otp", Key: "otp:ID0000000001", Policy: policy}
		now := time.Unix(1_800_000_000, 0)
		for i := range 3 {
			if w := fail(t, l, now, c); w != 0 {
				t.Fatalf("free attempt %d waits %v", i+1, w)
			}
		}
		// Waits double from the last failure: 1, 2, 4, then 4 minutes again (the cap).
		for _, want := range []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 4 * time.Minute} {
			if w := fail(t, l, now, c); w != want {
				t.Fatalf("wait %v, want %v", w, want)
			}
			if w := fail(t, l, now.Add(want-time.Second), c); w != time.Second {
				t.Fatalf("a second early: wait %v, want 1s", w)
			}
			now = now.Add(want)
			if w := fail(t, l, now, c); w != 0 {
				t.Fatalf("after %v: wait %v, want none", want, w)
			}
		}
		// Left alone for Forget, the counter starts again: three free attempts.
		now = now.Add(time.Hour)
		for i := range 3 {
			if w := fail(t, l, now, c); w != 0 {
				t.Fatalf("after forget, attempt %d waits %v", i+1, w)
			}
		}
		if w := fail(t, l, now, c); w != time.Minute {
			t.Fatalf("fourth attempt after forget waits %v, want 1m", w)
		}
	})
}

func TestDoneGivesBackAndResetForgets(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, db *sqlx.DB, d migrations.Dialect) {
		ctx := context.Background()
		l := newLimiter(t, db, d)
		c := attempts.Counter{Kind: "password", Key: "reenter:ID0000000002", Policy: policy}
		other := attempts.Counter{Kind: "password", Key: "reenter:ID0000000003", Policy: policy}
		now := time.Unix(1_800_000_000, 0)
		// Ten right answers never wait: each is given back.
		for range 10 {
			if w := try(t, l, now, c); w != 0 {
				t.Fatalf("a given-back attempt made the next wait %v", w)
			}
			if err := l.Done(ctx, now, false, c); err != nil {
				t.Fatal(err)
			}
		}
		for range 3 {
			fail(t, l, now, c, other)
		}
		if w := try(t, l, now, c); w != time.Minute {
			t.Fatalf("after three failures: wait %v, want 1m", w)
		}
		// A right answer after the wait does not move the wait of the next: it is given back whole.
		later := now.Add(time.Minute)
		try(t, l, later, c)
		if err := l.Done(ctx, later, false, c); err != nil {
			t.Fatal(err)
		}
		if w := try(t, l, later, c); w != 0 {
			t.Fatalf("after a right answer: wait %v", w)
		}
		if err := l.Done(ctx, later, false, c); err != nil {
			t.Fatal(err)
		}
		if err := l.Reset(ctx, c); err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			if w := fail(t, l, now, c); w != 0 {
				t.Fatalf("after reset, failure %d waits %v", i+1, w)
			}
		}
		if w := try(t, l, now, other); w != time.Minute {
			t.Fatalf("the other counter was reset too: wait %v", w)
		}
		// An attempt refused by one counter counts on none.
		fresh := attempts.Counter{Kind: "password", Key: "fresh", Policy: policy}
		for range 5 {
			fail(t, l, now, fresh, other)
		}
		for i := range 3 {
			if w := fail(t, l, now, fresh); w != 0 {
				t.Fatalf("refused attempts counted: attempt %d waits %v", i+1, w)
			}
		}
	})
}

// Many parallel guesses at once, from two limiters (two replicas) on one database: exactly the
// free ones pass, because each is counted before its secret is checked.
func TestParallelTriesShareOneCount(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, db *sqlx.DB, d migrations.Dialect) {
		replicas := []*attempts.Limiter{newLimiter(t, db, d), newLimiter(t, db, d)}
		c := attempts.Counter{Kind: "otp", Key: "otp:ID0000000004", Policy: policy}
		addr := attempts.Counter{Kind: "otp", Key: "address:192.0.2.1", Policy: attempts.Policy{Free: 1000, Delay: time.Minute, MaxDelay: time.Minute, Forget: time.Hour}}
		now := time.Unix(1_800_000_000, 0)
		var admitted atomic.Int64
		var wg sync.WaitGroup
		for i := range 40 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				w, err := replicas[i%2].Try(context.Background(), now, addr, c)
				if err != nil {
					t.Error(err)
					return
				}
				if w == 0 {
					admitted.Add(1)
				}
			}()
		}
		wg.Wait()
		if n := admitted.Load(); n != int64(policy.Free) {
			t.Fatalf("%d of 40 parallel attempts admitted, want %d", n, policy.Free)
		}
	})
}

func TestTrust(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, db *sqlx.DB, d migrations.Dialect) {
		ctx := context.Background()
		l := newLimiter(t, db, d)
		now := time.Unix(1_800_000_000, 0)
		if ok, err := l.Trusted(ctx, "known:alice|192.0.2.1", now); err != nil || ok {
			t.Fatalf("unknown key trusted: %v %v", ok, err)
		}
		if err := l.Trust(ctx, "known:alice|192.0.2.1", now.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if ok, err := l.Trusted(ctx, "known:alice|192.0.2.1", now); err != nil || !ok {
			t.Fatalf("trusted key not trusted: %v %v", ok, err)
		}
		if ok, _ := l.Trusted(ctx, "known:alice|192.0.2.2", now); ok {
			t.Fatal("another key trusted")
		}
		if ok, _ := l.Trusted(ctx, "known:alice|192.0.2.1", now.Add(2*time.Hour)); ok {
			t.Fatal("trust outlived its time")
		}
	})
}

func TestPolicyValidate(t *testing.T) {
	t.Parallel()
	for _, p := range []attempts.Policy{
		{Free: -1, Delay: time.Minute, MaxDelay: time.Minute, Forget: time.Hour},
		{Free: 1, Delay: 0, MaxDelay: time.Minute, Forget: time.Hour},
		{Free: 1, Delay: time.Hour, MaxDelay: time.Minute, Forget: time.Hour},
		{Free: 1, Delay: time.Minute, MaxDelay: time.Hour, Forget: time.Minute},
	} {
		if p.Validate() == nil {
			t.Errorf("%+v validated", p)
		}
	}
	if err := policy.Validate(); err != nil {
		t.Fatal(err)
	}
}

// Succeeded gives the attempts of done back, forgets the failures of reset (a counter in both is
// reset) and marks trust trusted, in one go.
func TestSucceeded(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, db *sqlx.DB, d migrations.Dialect) {
		ctx := context.Background()
		l := newLimiter(t, db, d)
		now := time.Unix(1_800_000_000, 0)
		login := attempts.Counter{Kind: "password", Key: "login:ID0000000005", Policy: policy}
		address := attempts.Counter{Kind: "password", Key: "address:192.0.2.5", Policy: policy}
		for range 2 {
			fail(t, l, now, login, address)
		}
		// The third attempt, admitted, is pending on both; the right password ends it.
		if w := try(t, l, now, login, address); w != 0 {
			t.Fatalf("third attempt waits %v", w)
		}
		if err := l.Succeeded(ctx, []attempts.Counter{login, address}, []attempts.Counter{login}, "known:ID0000000005|192.0.2.5", now.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		// The login starts again from zero: three free failures.
		for i := range 3 {
			if w := fail(t, l, now, login); w != 0 {
				t.Fatalf("after Succeeded, failure %d of the reset login waits %v", i+1, w)
			}
		}
		// The address keeps its two failures, but not the pending attempt: one more is free.
		if w := fail(t, l, now, address); w != 0 {
			t.Fatalf("the address's given-back attempt still counts: wait %v", w)
		}
		if w := try(t, l, now, address); w != time.Minute {
			t.Fatalf("the address after its third failure: wait %v, want 1m (its failures were kept)", w)
		}
		if ok, err := l.Trusted(ctx, "known:ID0000000005|192.0.2.5", now); err != nil || !ok {
			t.Fatalf("the signed-in address is not trusted: %v %v", ok, err)
		}
		// No mark asked for, none made.
		if err := l.Succeeded(ctx, nil, []attempts.Counter{login}, "", now); err != nil {
			t.Fatal(err)
		}
		if ok, _ := l.Trusted(ctx, "", now.Add(-time.Hour)); ok {
			t.Fatal("an empty key was trusted")
		}
	})
}

// Tries and successes of overlapping counters, at once from two replicas, never deadlock: both
// lock their rows in one order.
func TestSucceededAndTryDoNotDeadlock(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, db *sqlx.DB, d migrations.Dialect) {
		replicas := []*attempts.Limiter{newLimiter(t, db, d), newLimiter(t, db, d)}
		free := attempts.Policy{Free: 1 << 20, Delay: time.Minute, MaxDelay: time.Minute, Forget: time.Hour}
		var cs []attempts.Counter
		for i := range 4 {
			cs = append(cs, attempts.Counter{Kind: "password", Key: "k" + string(rune('a'+i)), Policy: free})
		}
		now := time.Unix(1_800_000_000, 0)
		ctx := context.Background()
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				l := replicas[g%2]
				for i := range 25 {
					// Each goroutine takes a different pair, in a different order.
					mine := []attempts.Counter{cs[(g+i)%4], cs[(g+i+1+g%3)%4]}
					if w, err := l.Try(ctx, now, mine[1], mine[0]); err != nil || w != 0 {
						t.Errorf("try: wait %v, %v", w, err)
						return
					}
					if err := l.Succeeded(ctx, mine, mine[:1], "", now); err != nil {
						t.Errorf("succeeded: %v", err)
						return
					}
				}
			})
		}
		wg.Wait()
	})
}
