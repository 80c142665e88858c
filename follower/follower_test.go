package follower_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	_ "github.com/lib/pq"

	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/eventstore/eventstoretest"
	"github.com/idlog/idlog/eventstore/postgres"
	"github.com/idlog/idlog/eventstore/sqlite"
	"github.com/idlog/idlog/follower"
	"github.com/idlog/idlog/follower/followertest"
	"github.com/idlog/idlog/lease"
	"github.com/idlog/idlog/migrations"
	"github.com/idlog/idlog/projections"
)

// testTTL keeps failover quick in tests.
const testTTL = 400 * time.Millisecond

func TestConformanceSQLite(t *testing.T) {
	t.Parallel()
	paths := map[eventstore.Store]string{}
	followertest.Run(t, followertest.Backend{
		NewStore: func(t *testing.T, h eventstoretest.Hooks) eventstore.Store {
			path := filepath.Join(t.TempDir(), "events.db")
			s, err := sqlite.Open(context.Background(), sqlite.Options{Path: path, BeforeCommit: h.BeforeCommit})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			paths[s] = path
			return s
		},
		NewLease: func(t *testing.T, s eventstore.Store, owner string) follower.Lease {
			db, err := projections.OpenSQLite(context.Background(), paths[s])
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			return newLease(t, lease.Options{DB: db.DB, Dialect: migrations.SQLite, Owner: owner, TTL: testTTL})
		},
		TailSize: follower.SetTailSize,
	})
}

func TestConformancePostgres(t *testing.T) {
	t.Parallel()
	followertest.Run(t, followertest.Backend{
		NewStore: func(t *testing.T, h eventstoretest.Hooks) eventstore.Store {
			s, err := postgres.Open(context.Background(), postgres.Options{DSN: eventstoretest.PostgresSchema(t), BeforeCommit: h.BeforeCommit})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		},
		NewLease: func(t *testing.T, s eventstore.Store, owner string) follower.Lease {
			return newLease(t, lease.Options{DB: s.(*postgres.Store).DB().DB, Dialect: migrations.Postgres, Owner: owner, TTL: testTTL})
		},
		TailSize: follower.SetTailSize,
	})
}

func newLease(t *testing.T, o lease.Options) *lease.Leases {
	t.Helper()
	l, err := lease.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return l
}
