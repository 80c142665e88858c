package main

import (
	"database/sql"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/lib/pq"

	"github.com/idlog/idlog/eventstore/eventstoretest"
	"github.com/idlog/idlog/eventstore/postgres"
	"github.com/idlog/idlog/internal/config"
	"github.com/idlog/idlog/lease"
	"github.com/idlog/idlog/migrations"
	"github.com/idlog/idlog/projections"
)

// TestServeRefusesKeysOtherReplicasDoNotUse: a replica whose key files differ from the ones
// recorded in the database does not start, and says which setting to fix: the token signing key,
// and the events signing key (after a failover another replica's relay publishes, and consumers
// verify with the keys any replica serves).
func TestServeRefusesKeysOtherReplicasDoNotUse(t *testing.T) {
	t.Parallel()
	for name, setting := range map[string]string{"signing_key": "IDLOG_SIGNING_KEY_FILE", "events_signing_key": "IDLOG_EVENTS_SIGNING_KEY_FILE"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "data")
			if code, _, stderr := runIdlog(t, nil, "migrate", "-data-dir", dir); code != 0 {
				t.Fatalf("migrate: %s", stderr)
			}
			db, err := projections.OpenSQLite(t.Context(), filepath.Join(dir, "idlog.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			// Another replica recorded its own key.
			if _, err := db.Exec(`INSERT INTO replica_settings (name, value) VALUES (?, '0123456789abcdef')`, name); err != nil {
				t.Fatal(err)
			}
			code, _, stderr := runIdlog(t, map[string]string{"IDLOG_NATS_PORT": "0"}, "serve", "-data-dir", dir, "-http-addr", "127.0.0.1:0")
			if code == 0 || !strings.Contains(stderr, setting) || !strings.Contains(stderr, "0123456789abcdef") {
				t.Fatalf("serve = %d, stderr %q; want a refusal naming %s and the recorded fingerprint", code, stderr, setting)
			}
		})
	}
}

// TestServeRefusesEmbeddedNATSBesideOtherReplicas: on a PostgreSQL database another live replica
// uses, a replica with no IDLOG_NATS_URL (an embedded NATS of its own) does not start.
func TestServeRefusesEmbeddedNATSBesideOtherReplicas(t *testing.T) {
	t.Parallel()
	dsn := eventstoretest.PostgresSchema(t)
	if code, _, stderr := runIdlog(t, map[string]string{"IDLOG_DATABASE_URL": dsn}, "migrate"); code != 0 {
		t.Fatalf("migrate: %s", stderr)
	}
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`INSERT INTO follower_leases (name, owner, token, expires_at) VALUES ('nats-relay', 'replica-1', 1, now() + interval '1 hour')`); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runIdlog(t, map[string]string{"IDLOG_DATABASE_URL": dsn, "IDLOG_NATS_PORT": "0", "IDLOG_DATA_DIR": t.TempDir()}, "serve", "-http-addr", "127.0.0.1:0")
	if code == 0 || !strings.Contains(stderr, "IDLOG_NATS_URL") || !strings.Contains(stderr, "replica-1") {
		t.Fatalf("serve = %d, stderr %q; want a refusal naming replica-1 and IDLOG_NATS_URL", code, stderr)
	}
}

// TestServeWaitsOutItsOwnLeasesAfterACrash: leases left by a replica that crashed (they expire
// without renewal) do not stop an embedded-NATS replica from starting.
func TestServeWaitsOutItsOwnLeasesAfterACrash(t *testing.T) {
	t.Parallel()
	dsn := eventstoretest.PostgresSchema(t)
	if code, _, stderr := runIdlog(t, map[string]string{"IDLOG_DATABASE_URL": dsn}, "migrate"); code != 0 {
		t.Fatalf("migrate: %s", stderr)
	}
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`INSERT INTO follower_leases (name, owner, token, expires_at) VALUES ('nats-relay', 'crashed', 1, now() + interval '1 second')`); err != nil {
		t.Fatal(err)
	}
	err = refuseSharedEmbeddedNATS(t.Context(), config.Config{}, openPostgresStore(t, dsn), newTestLeases(t, dsn))
	if err != nil {
		t.Fatalf("a lease that expires unrenewed stopped the start: %v", err)
	}
}

func openPostgresStore(t *testing.T, dsn string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(t.Context(), postgres.Options{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newTestLeases(t *testing.T, dsn string) *lease.Leases {
	t.Helper()
	s := openPostgresStore(t, dsn)
	l, err := lease.New(lease.Options{DB: s.DB().DB, Dialect: migrations.Postgres})
	if err != nil {
		t.Fatal(err)
	}
	return l
}
