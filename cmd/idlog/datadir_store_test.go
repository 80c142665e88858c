package main

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A data directory served with SQLite is refused to PostgreSQL (its embedded NATS stream holds the
// SQLite log's events), with what to do instead; the same store starts again.
func TestServeRefusesAnotherEventStoreOnTheDataDirectory(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	env := map[string]string{"IDLOG_DATA_DIR": dir, "IDLOG_HTTP_ADDR": "127.0.0.1:0", "IDLOG_NATS_PORT": "0", "IDLOG_LOG_FORMAT": "json",
		"IDLOG_ARGON2_MEMORY": "64", "IDLOG_ARGON2_ITERATIONS": "1"}
	_, stop := startServe(t, env)
	stop()
	if b, err := os.ReadFile(filepath.Join(dir, "eventstore")); err != nil || string(b) != "sqlite\n" {
		t.Fatalf("marker: %q, %v", b, err)
	}

	pg := map[string]string{}
	for k, v := range env {
		pg[k] = v
	}
	// Refused before any connection: no PostgreSQL needs to run at this address.
	pg["IDLOG_DATABASE_URL"] = "postgres://idlog:secret@127.0.0.1:1/idlog?sslmode=disable"
	code, _, stderr := runIdlog(t, pg, "serve")
	if code != 1 || !strings.Contains(stderr, "belongs to the sqlite event store, and this configuration uses postgres://127.0.0.1:1/idlog") ||
		!strings.Contains(stderr, "a data directory of its own") || strings.Contains(stderr, "secret@") {
		t.Fatalf("serve on PostgreSQL with the SQLite data directory = %d, stderr %s", code, stderr)
	}

	// A directory from before the marker, with a SQLite log and a NATS stream, is refused alike.
	if err := os.Remove(filepath.Join(dir, "eventstore")); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runIdlog(t, pg, "serve"); code != 1 || !strings.Contains(stderr, "belongs to the sqlite event store") {
		t.Fatalf("serve on PostgreSQL with an unmarked SQLite data directory = %d, stderr %s", code, stderr)
	}
	_, stop = startServe(t, env)
	stop()

	// A start that fails (here: no PostgreSQL at that address) claims no directory.
	fresh := map[string]string{"IDLOG_DATA_DIR": t.TempDir(), "IDLOG_DATABASE_URL": pg["IDLOG_DATABASE_URL"], "IDLOG_NATS_PORT": "none"}
	if code, _, _ := runIdlog(t, fresh, "serve"); code != 1 {
		t.Fatalf("serve on an unreachable PostgreSQL = %d, want 1", code)
	}
	if _, err := os.Stat(filepath.Join(fresh["IDLOG_DATA_DIR"], "eventstore")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a failed start claimed the data directory: %v", err)
	}
}
