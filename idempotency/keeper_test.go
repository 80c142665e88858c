package idempotency_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq"
	_ "modernc.org/sqlite"

	"github.com/idlog/idlog/eventstore/eventstoretest"
	"github.com/idlog/idlog/idempotency"
	"github.com/idlog/idlog/migrations"
)

// stores are the Stores under test: memory and SQLite always, PostgreSQL when
// IDLOG_TEST_DATABASE_URL is set.
func stores(t *testing.T) map[string]func(t *testing.T) idempotency.Store {
	s := map[string]func(t *testing.T) idempotency.Store{
		"memory": func(*testing.T) idempotency.Store { return idempotency.NewMemoryStore() },
		"sqlite": func(t *testing.T) idempotency.Store {
			db, err := sqlx.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "idlog.db")+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			if err := migrations.Up(context.Background(), db.DB, migrations.SQLite); err != nil {
				t.Fatal(err)
			}
			return idempotency.NewSQLStore(db)
		},
	}
	if os.Getenv(eventstoretest.PostgresEnv) != "" {
		s["postgres"] = func(t *testing.T) idempotency.Store {
			db, err := sqlx.Open("postgres", eventstoretest.PostgresSchema(t))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			if err := migrations.Up(context.Background(), db.DB, migrations.Postgres); err != nil {
				t.Fatal(err)
			}
			return idempotency.NewSQLStore(db)
		}
	} else {
		t.Log("Postgres SKIPPED: set " + eventstoretest.PostgresEnv + " to run these tests on it too")
	}
	return s
}

type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

func newKeeper(t *testing.T, s idempotency.Store, c *fakeClock) *idempotency.Keeper {
	k, err := idempotency.NewKeeper(idempotency.Options{Store: s, Retention: time.Hour, Lease: time.Minute, Poll: 5 * time.Millisecond, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Many requests with one claim, at once, through two keepers (two processes) on one store: one
// runs, all others get its answer; a failed first request lets the next one run; another
// fingerprint is refused; an answer is kept for the retention, then swept.
func TestKeeper(t *testing.T) {
	t.Parallel()
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			c := &fakeClock{}
			c.ns.Store(time.Now().UnixNano())
			s := open(t)
			keepers := []*idempotency.Keeper{newKeeper(t, s, c), newKeeper(t, s, c)}
			fp, other := []byte("fingerprint-a"), []byte("fingerprint-b")

			var runs atomic.Int32
			var wg sync.WaitGroup
			answers := make(chan string, 30)
			for i := range 30 {
				wg.Go(func() {
					claim, answer, err := keepers[i%2].Begin(ctx, "claim-1", fp)
					if err != nil {
						t.Error(err)
						return
					}
					if claim != nil {
						runs.Add(1)
						time.Sleep(time.Millisecond) // let the others find it running
						if err := claim.Complete(ctx, []byte("the answer")); err != nil {
							t.Error(err)
						}
						answers <- "the answer"
						return
					}
					answers <- string(answer)
				})
			}
			wg.Wait()
			close(answers)
			if runs.Load() != 1 {
				t.Fatalf("%d requests ran, want 1", runs.Load())
			}
			for a := range answers {
				if a != "the answer" {
					t.Fatalf("a duplicate got %q", a)
				}
			}
			if _, _, err := keepers[1].Begin(ctx, "claim-1", other); !errors.Is(err, idempotency.ErrKeyReused) {
				t.Fatalf("another fingerprint: %v, want ErrKeyReused", err)
			}

			// A failed first request keeps nothing: the next one runs.
			claim, _, err := keepers[0].Begin(ctx, "claim-2", fp)
			if err != nil || claim == nil {
				t.Fatalf("first of claim-2: %v %v", claim, err)
			}
			if err := claim.Release(ctx); err != nil {
				t.Fatal(err)
			}
			if claim, _, err = keepers[1].Begin(ctx, "claim-2", other); err != nil || claim == nil {
				t.Fatalf("after a release another request must run: %v %v", claim, err)
			}

			// A first request whose process died holds the claim for its lease only.
			c.Advance(time.Minute + time.Second)
			taken, _, err := keepers[0].Begin(ctx, "claim-2", fp)
			if err != nil || taken == nil {
				t.Fatalf("after the lease: %v %v, want the claim", taken, err)
			}
			_ = taken.Complete(ctx, []byte("second"))
			_ = claim.Complete(ctx, []byte("late")) // the old holder's answer no longer counts
			if _, a, err := keepers[1].Begin(ctx, "claim-2", fp); err != nil || string(a) != "second" {
				t.Fatalf("answer after a takeover: %q %v", a, err)
			}

			// Answers live for the retention, then go.
			c.Advance(57 * time.Minute)
			if _, a, _ := keepers[0].Begin(ctx, "claim-1", fp); string(a) != "the answer" {
				t.Fatalf("within the retention: %q", a)
			}
			if n, err := keepers[0].Sweep(ctx); err != nil || n != 0 {
				t.Fatalf("sweep within the retention: %d, %v", n, err)
			}
			c.Advance(150 * time.Second)
			if n, err := keepers[0].Sweep(ctx); err != nil || n != 1 {
				t.Fatalf("sweep after claim-1's retention: %d, %v; want 1 swept", n, err)
			}
			if claim, _, err := keepers[1].Begin(ctx, "claim-1", other); err != nil || claim == nil {
				t.Fatalf("after the retention the key is free: %v %v", claim, err)
			}
		})
	}
}

func TestKeeperOptions(t *testing.T) {
	t.Parallel()
	_, err := idempotency.NewKeeper(idempotency.Options{Store: idempotency.NewMemoryStore(), Retention: -time.Second})
	if err == nil || err.Error() != "idempotency: retention (-1s) cannot be negative" {
		t.Errorf("negative retention: %v", err)
	}
}
