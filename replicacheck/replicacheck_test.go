package replicacheck_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"

	_ "github.com/lib/pq"

	"github.com/idlog/idlog/eventstore/eventstoretest"
	"github.com/idlog/idlog/migrations"
	"github.com/idlog/idlog/projections"
	"github.com/idlog/idlog/replicacheck"
)

func TestFirstReplicaRecordsOthersMustAgree(t *testing.T) {
	t.Parallel()
	open := map[migrations.Dialect]func(t *testing.T) *sql.DB{
		migrations.SQLite: func(t *testing.T) *sql.DB {
			db, err := projections.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "idlog.db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			return db.DB
		},
		migrations.Postgres: func(t *testing.T) *sql.DB {
			db, err := sql.Open("postgres", eventstoretest.PostgresSchema(t))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			return db
		},
	}
	for d, openDB := range open {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			db := openDB(t)
			if err := migrations.Up(ctx, db, d); err != nil {
				t.Fatal(err)
			}
			mine := replicacheck.Fingerprint("signing key", []byte("key one"))
			if err := replicacheck.Agree(ctx, db, d, "signing_key", mine); err != nil {
				t.Fatalf("first replica: %v", err)
			}
			if err := replicacheck.Agree(ctx, db, d, "signing_key", mine); err != nil {
				t.Fatalf("a replica with the same key: %v", err)
			}
			other := replicacheck.Fingerprint("signing key", []byte("key two"))
			err := replicacheck.Agree(ctx, db, d, "signing_key", other)
			var me *replicacheck.MismatchError
			if !errors.Is(err, replicacheck.ErrMismatch) || !errors.As(err, &me) || me.Recorded != mine || me.Mine != other {
				t.Fatalf("a replica with another key: %v, want a mismatch naming %s and %s", err, mine, other)
			}
			// A rotation from a key that is not the recorded one changes nothing.
			if ok, err := replicacheck.Replace(ctx, db, d, "signing_key", other, other); ok || err != nil {
				t.Fatalf("replace from an unrecorded key: %v, %v", ok, err)
			}
			// The rotation from the recorded key moves every replica to the new one.
			if ok, err := replicacheck.Replace(ctx, db, d, "signing_key", mine, other); !ok || err != nil {
				t.Fatalf("replace from the recorded key: %v, %v", ok, err)
			}
			if err := replicacheck.Agree(ctx, db, d, "signing_key", other); err != nil {
				t.Fatalf("the rotated key: %v", err)
			}
			if err := replicacheck.Agree(ctx, db, d, "signing_key", mine); !errors.Is(err, replicacheck.ErrMismatch) {
				t.Fatalf("the retired key: %v, want a mismatch", err)
			}
		})
	}
}
