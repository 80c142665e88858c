package lease_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"
	"time"

	_ "github.com/lib/pq"

	"github.com/idlog/idlog/eventstore/eventstoretest"
	"github.com/idlog/idlog/follower"
	"github.com/idlog/idlog/lease"
	"github.com/idlog/idlog/migrations"
	"github.com/idlog/idlog/projections"
)

type backend struct {
	name    string
	dialect migrations.Dialect
	// open makes a fresh database and returns a handle to it and a function that opens another
	// handle to the same database.
	open func(t *testing.T) (*sql.DB, func() *sql.DB)
}

func backends() []backend {
	return []backend{
		{"sqlite", migrations.SQLite, func(t *testing.T) (*sql.DB, func() *sql.DB) {
			path := filepath.Join(t.TempDir(), "idlog.db")
			open := func() *sql.DB {
				db, err := projections.OpenSQLite(context.Background(), path)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { db.Close() })
				return db.DB
			}
			db := open()
			if err := migrations.Up(context.Background(), db, migrations.SQLite); err != nil {
				t.Fatal(err)
			}
			return db, open
		}},
		{"postgres", migrations.Postgres, func(t *testing.T) (*sql.DB, func() *sql.DB) {
			dsn := eventstoretest.PostgresSchema(t)
			open := func() *sql.DB {
				db, err := sql.Open("postgres", dsn)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { db.Close() })
				return db
			}
			db := open()
			if err := migrations.Up(context.Background(), db, migrations.Postgres); err != nil {
				t.Fatal(err)
			}
			return db, open
		}},
	}
}

// fencedWrite runs lease.Check in a transaction under the fence ctx carries.
func fencedWrite(ctx context.Context, db *sql.DB, d migrations.Dialect) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // test
	if err := lease.Check(ctx, tx, d); err != nil {
		return err
	}
	return tx.Commit()
}

// TestStalledOwnerIsFenced: the owner stops renewing (as a SIGSTOPped process does); a standby
// takes the lease with a higher token; the old owner's writes are refused and its hold ends.
func TestStalledOwnerIsFenced(t *testing.T) {
	t.Parallel()
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			db, another := b.open(t)
			dbA := another() // a's own connections: closing them stalls a's renewals
			ttl := 300 * time.Millisecond
			a, _ := lease.New(lease.Options{DB: dbA, Dialect: b.dialect, Owner: "a", TTL: ttl})
			bl, _ := lease.New(lease.Options{DB: db, Dialect: b.dialect, Owner: "b", TTL: ttl})

			ha, err := a.Acquire(ctx, "projector.users", nil)
			if err != nil {
				t.Fatal(err)
			}
			defer ha.Release()
			actx := follower.WithToken(ctx, "projector.users", ha.Token)
			if err := fencedWrite(actx, db, b.dialect); err != nil {
				t.Fatalf("the owner's write: %v", err)
			}

			// b stands by, naming a as the owner, while a renews.
			var seen []string
			wctx, wcancel := context.WithTimeout(ctx, 2*ttl)
			if _, err := bl.Acquire(wctx, "projector.users", func(o string) { seen = append(seen, o) }); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("standby acquired a renewed lease: %v", err)
			}
			wcancel()
			if len(seen) != 1 || seen[0] != "a" {
				t.Fatalf("standby saw owners %q, want [a]", seen)
			}

			// a stalls: its renewals stop, as a stopped process's do, and its lease expires.
			dbA.Close()
			hb, err := bl.Acquire(ctx, "projector.users", nil)
			if err != nil {
				t.Fatal(err)
			}
			defer hb.Release()
			if hb.Token <= ha.Token {
				t.Fatalf("new token %d, want above %d", hb.Token, ha.Token)
			}
			if err := fencedWrite(actx, db, b.dialect); !errors.Is(err, lease.ErrFenced) || !errors.Is(err, follower.ErrLeaseLost) {
				t.Fatalf("the stalled owner's write after the takeover: %v, want ErrFenced", err)
			}
			if err := fencedWrite(follower.WithToken(ctx, "projector.users", hb.Token), db, b.dialect); err != nil {
				t.Fatalf("the new owner's write: %v", err)
			}
			select {
			case <-ha.Context.Done():
			case <-ctx.Done():
				t.Fatal("the old owner's hold did not end")
			}
			if owner, token, err := bl.Current(ctx, "projector.users"); err != nil || owner != "b" || token != hb.Token {
				t.Fatalf("Current = %q, %d, %v; want b, %d", owner, token, err, hb.Token)
			}
		})
	}
}

func TestReleaseHandsOverAtOnce(t *testing.T) {
	t.Parallel()
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			db, _ := b.open(t)
			a, _ := lease.New(lease.Options{DB: db, Dialect: b.dialect, Owner: "a", TTL: time.Hour})
			bl, _ := lease.New(lease.Options{DB: db, Dialect: b.dialect, Owner: "b", TTL: time.Hour})
			ha, err := a.Acquire(ctx, "nats-relay", nil)
			if err != nil {
				t.Fatal(err)
			}
			ha.Release()
			// With an hour's TTL, only the release lets b in within the test's deadline.
			hb, err := bl.Acquire(ctx, "nats-relay", nil)
			if err != nil {
				t.Fatal(err)
			}
			hb.Release()
		})
	}
}

// TestSQLiteRestartTakesItsLeasesAtOnce: a process restarted after a crash finds its old leases
// unexpired; on SQLite, which one process uses, it takes them at once.
func TestSQLiteRestartTakesItsLeasesAtOnce(t *testing.T) {
	t.Parallel()
	db, _ := backends()[0].open(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	crashed, _ := lease.New(lease.Options{DB: db, Dialect: migrations.SQLite, Owner: "crashed", SQLiteTakeover: true})
	h, err := crashed.Acquire(ctx, "projector.users", nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = h // never released: the process died
	restarted, _ := lease.New(lease.Options{DB: db, Dialect: migrations.SQLite, Owner: "restarted", SQLiteTakeover: true})
	h2, err := restarted.Acquire(ctx, "projector.users", nil)
	if err != nil {
		t.Fatalf("the restarted process waited for the crashed one's lease: %v", err)
	}
	defer h2.Release()
	if h2.Token <= h.Token {
		t.Fatalf("token %d after %d", h2.Token, h.Token)
	}
}
