package lease_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/idlog/idlog/follower"
	"github.com/idlog/idlog/lease"
	"github.com/idlog/idlog/migrations"
)

// TestStandbyEndsAStalledOwnersWrite: the owner stalls in the middle of a fenced write (a
// SIGSTOPped process's open transaction holds its lease row, idle). Once the lease has expired
// and the write has been idle for longer than the TTL, a standby ends that transaction and takes
// the lease with a higher token, instead of waiting for PostgreSQL's idle timeout; the stalled
// write can then never commit. A write that is still running is waited for, not ended.
func TestStandbyEndsAStalledOwnersWrite(t *testing.T) {
	t.Parallel()
	b := backends()[1]
	if b.dialect != migrations.Postgres {
		t.Fatal("backends()[1] is not PostgreSQL")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, another := b.open(t)
	dbA := another()
	ttl := 300 * time.Millisecond
	a, _ := lease.New(lease.Options{DB: dbA, Dialect: b.dialect, Owner: "a", TTL: ttl})
	bl, _ := lease.New(lease.Options{DB: db, Dialect: b.dialect, Owner: "b", TTL: ttl})
	users, err := a.Acquire(ctx, "projector.users", nil)
	if err != nil {
		t.Fatal(err)
	}
	labels, err := a.Acquire(ctx, "projector.labels", nil)
	if err != nil {
		t.Fatal(err)
	}

	// The stalled write: its transaction checked the fence (locking the row) and sends nothing
	// more. The running one: it checked the fence and runs a statement for a while.
	stalled, err := another().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Rollback() //nolint:errcheck // ended by the standby
	if err := lease.Check(follower.WithToken(ctx, "projector.users", users.Token), stalled, b.dialect); err != nil {
		t.Fatal(err)
	}
	running, err := another().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer running.Rollback() //nolint:errcheck // ended below
	if err := lease.Check(follower.WithToken(ctx, "projector.labels", labels.Token), running, b.dialect); err != nil {
		t.Fatal(err)
	}
	dbA.Close() // a renews nothing from now on
	slept := make(chan error, 1)
	go func() {
		_, err := running.ExecContext(ctx, `SELECT pg_sleep(3)`)
		slept <- err
	}()

	// Nothing here ends the stalled transaction: only the standby can.
	h, err := bl.Acquire(ctx, "projector.users", nil)
	if err != nil {
		t.Fatalf("the standby did not take the lease a stalled write held: %v", err)
	}
	defer h.Release()
	if h.Token <= users.Token {
		t.Fatalf("token %d after the stalled owner's %d", h.Token, users.Token)
	}
	if err := stalled.Commit(); err == nil {
		t.Fatal("the stalled owner's write committed after the standby took its lease")
	}

	got := make(chan *follower.Hold, 1)
	go func() {
		h, err := bl.Acquire(ctx, "projector.labels", nil)
		if err != nil {
			t.Error(err)
		}
		got <- h
	}()
	if err := <-slept; err != nil {
		t.Fatalf("the running write was ended: %v", err)
	}
	select {
	case <-got:
		t.Fatal("the standby took a lease whose row a running write holds")
	default:
	}
	if err := running.Rollback(); err != nil {
		t.Fatal(err)
	}
	hl := <-got
	if hl == nil {
		t.FailNow()
	}
	defer hl.Release()
	if hl.Token <= labels.Token {
		t.Fatalf("token %d after the owner's %d", hl.Token, labels.Token)
	}
}

// TestALongWriteHoldsUpOnlyItsOwnLease: while a write of the owner holds one lease row for
// longer than the TTL, the owner's other leases are still renewed, and a standby does not get
// them.
func TestALongWriteHoldsUpOnlyItsOwnLease(t *testing.T) {
	t.Parallel()
	for _, b := range backends() {
		if b.dialect != migrations.Postgres {
			continue // SQLite: one process owns everything, and its writes do not lock rows
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		db, another := b.open(t)
		ttl := 300 * time.Millisecond
		a, _ := lease.New(lease.Options{DB: another(), Dialect: b.dialect, Owner: "a", TTL: ttl})
		bl, _ := lease.New(lease.Options{DB: db, Dialect: b.dialect, Owner: "b", TTL: ttl})
		held := map[string]*follower.Hold{}
		for _, name := range []string{"projector.users", "projector.labels", "nats-relay"} {
			h, err := a.Acquire(ctx, name, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer h.Release()
			held[name] = h
		}
		tx, err := another().BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := lease.Check(follower.WithToken(ctx, "projector.users", held["projector.users"].Token), tx, b.dialect); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"projector.labels", "nats-relay"} {
			wctx, wcancel := context.WithTimeout(ctx, 4*ttl)
			if _, err := bl.Acquire(wctx, name, nil); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("standby acquired %s, renewed by its owner, while another lease's row was held: %v", name, err)
			}
			wcancel()
		}
		_ = tx.Rollback()
		for name, h := range held {
			if name != "projector.users" && h.Context.Err() != nil {
				t.Errorf("the owner lost %s", name)
			}
		}
	}
}

// TestAWaitingStandbyTakesAReleasedLease: the owner, still renewing, gives its lease up (a
// graceful shutdown); a standby already waiting takes it, though it would never expire.
func TestAWaitingStandbyTakesAReleasedLease(t *testing.T) {
	t.Parallel()
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			db, _ := b.open(t)
			ttl := 2 * time.Second
			a, _ := lease.New(lease.Options{DB: db, Dialect: b.dialect, Owner: "a", TTL: ttl})
			bl, _ := lease.New(lease.Options{DB: db, Dialect: b.dialect, Owner: "b", TTL: ttl})
			ha, err := a.Acquire(ctx, "audit-sealer", nil)
			if err != nil {
				t.Fatal(err)
			}
			standing := make(chan string, 1)
			got := make(chan *follower.Hold, 1)
			go func() {
				h, err := bl.Acquire(ctx, "audit-sealer", func(owner string) { standing <- owner })
				if err != nil {
					t.Error(err)
				}
				got <- h
			}()
			if owner := <-standing; owner != "a" {
				t.Fatalf("the standby saw owner %q, want a", owner)
			}
			ha.Release()
			h := <-got
			if h == nil {
				t.FailNow()
			}
			defer h.Release()
			if h.Token <= ha.Token {
				t.Fatalf("token %d after %d", h.Token, ha.Token)
			}
		})
	}
}
