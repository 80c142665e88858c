package follower_test

import (
	"context"
	"path/filepath"
	"testing"

	_ "github.com/lib/pq"

	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/eventstore/eventstoretest"
	"github.com/idlog/idlog/eventstore/postgres"
	"github.com/idlog/idlog/eventstore/sqlite"
	"github.com/idlog/idlog/follower/followertest"
)

func TestConformanceSQLite(t *testing.T) {
	t.Parallel()
	followertest.Run(t, followertest.Backend{
		NewStore: func(t *testing.T, h eventstoretest.Hooks) eventstore.Store {
			s, err := sqlite.Open(context.Background(), sqlite.Options{Path: filepath.Join(t.TempDir(), "events.db"), BeforeCommit: h.BeforeCommit})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		},
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
	})
}
