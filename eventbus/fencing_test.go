package eventbus_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/idlog/idlog/eventbus"
	"github.com/idlog/idlog/eventstore/postgres"
	"github.com/idlog/idlog/eventstore/sqlite"
	"github.com/idlog/idlog/follower"
	"github.com/idlog/idlog/lease"
	"github.com/idlog/idlog/migrations"
	"github.com/idlog/idlog/projections"
)

// leasedBackend is a store and a handle on the database that holds its leases.
type leasedBackend struct {
	name string
	open func(t *testing.T) (store, *sql.DB, migrations.Dialect)
}

func leasedBackends() []leasedBackend {
	out := []leasedBackend{{"sqlite", func(t *testing.T) (store, *sql.DB, migrations.Dialect) {
		path := filepath.Join(t.TempDir(), "idlog.db")
		s, err := sqlite.Open(context.Background(), sqlite.Options{Path: path})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		db, err := projections.OpenSQLite(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return s, db.DB, migrations.SQLite
	}}}
	for _, b := range backends() {
		if b.name == "postgres" {
			out = append(out, leasedBackend{"postgres", func(t *testing.T) (store, *sql.DB, migrations.Dialect) {
				s := b.open(t)
				return s, s.(*postgres.Store).DB().DB, migrations.Postgres
			}})
		}
	}
	return out
}

// stalledLease hands out a token it was given and never notices that the token lost the lease:
// the relay of a process that stalled (SIGSTOP, a long pause) past its lease's expiry, while a
// standby took over, and woke up still running.
type stalledLease struct{ hold follower.Hold }

func (l stalledLease) Acquire(ctx context.Context, _ string, _ func(string)) (*follower.Hold, error) {
	h := l.hold
	h.Context, h.Release = ctx, func() {}
	return &h, nil
}

// TestStalledRelayOwnerCannotMoveTheCheckpoint: once a standby holds the relay's lease with a
// newer token, the old owner's checkpoint saves are refused, on PostgreSQL and SQLite alike.
func TestStalledRelayOwnerCannotMoveTheCheckpoint(t *testing.T) {
	t.Parallel()
	for _, b := range leasedBackends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			s, db, dialect := b.open(t)
			srv := startServer(t, t.TempDir(), 0)

			leases, err := lease.New(lease.Options{DB: db, Dialect: dialect, Owner: "stalled", TTL: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			h, err := leases.Acquire(ctx, eventbus.DefaultCheckpointName, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer h.Release()

			o := relayOptions(s, newClient(t, srv.ClientURL(), nil))
			o.Lease = stalledLease{hold: *h}
			r, stop := runRelay(t, o)
			first := appendUsers(t, s, 3)
			owned := first[len(first)-1].GlobalPosition
			waitFor(t, 10*time.Second, "the owner's checkpoint", func() bool {
				pos, err := s.Checkpoint(ctx, eventbus.DefaultCheckpointName)
				return err == nil && pos == owned
			})

			// A standby takes the lease over: the owner's token is an old one now.
			if _, err := db.ExecContext(ctx, `UPDATE follower_leases SET owner = 'standby', token = token + 1 WHERE name = 'nats-relay'`); err != nil {
				t.Fatal(err)
			}
			more := appendUsers(t, s, 3)
			last := more[len(more)-1].GlobalPosition
			// The stalled owner still publishes (JetStream fences that by the message chain), and
			// saves its checkpoint every 20ms and once more when it stops: every save is refused.
			waitFor(t, 10*time.Second, "the stalled owner to publish", func() bool { return r.Status().Position == last })
			stop()
			if pos, err := s.Checkpoint(ctx, eventbus.DefaultCheckpointName); err != nil || pos != owned {
				t.Fatalf("checkpoint = %d, %v after the takeover; want the owner's %d", pos, err, owned)
			}

			// The store refuses the old token and takes the new one.
			err = s.SetCheckpoint(follower.WithToken(ctx, eventbus.RelayFollowerName, h.Token), eventbus.DefaultCheckpointName, last)
			if !errors.Is(err, follower.ErrLeaseLost) {
				t.Fatalf("SetCheckpoint with the old token = %v, want ErrLeaseLost", err)
			}
			err = s.SetCheckpoint(follower.WithToken(ctx, eventbus.RelayFollowerName, h.Token+1), eventbus.DefaultCheckpointName, last)
			if err != nil {
				t.Fatalf("SetCheckpoint with the new token: %v", err)
			}
			if pos, err := s.Checkpoint(ctx, eventbus.DefaultCheckpointName); err != nil || pos != last {
				t.Fatalf("checkpoint = %d, %v; want the new owner's %d", pos, err, last)
			}
		})
	}
}
