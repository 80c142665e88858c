package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/eventstore/sqlite"
	"github.com/idlog/idlog/internal/config"
)

// runWithInput is runIdlog with a standard input.
func runWithInput(t *testing.T, stdin io.Reader, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr syncBuffer
	code := run(t.Context(), args, &environment{stdin: stdin, stdout: &stdout, stderr: &stderr, getenv: func(k string) string { return env[k] }})
	return code, stdout.String(), stderr.String()
}

// seedDataDir appends a few events to the SQLite store of a data directory and returns their ids.
func seedDataDir(t *testing.T, dir string) []string {
	t.Helper()
	s, err := sqlite.Open(context.Background(), sqlite.Options{Path: config.Config{DataDir: dir}.SQLitePath()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 5 {
		_, err := s.Append(context.Background(), eventstore.Append{Stream: fmt.Sprintf("s-%d", i%2), Expected: eventstore.Any,
			Events: []eventstore.NewEvent{{Type: "Tick", SchemaVersion: 1, Data: []byte(fmt.Sprintf(`{"i":%d}`, i)),
				Metadata: eventstore.Metadata{ActorUID: "system", IP: "192.0.2.1"}}}})
		if err != nil {
			t.Fatal(err)
		}
	}
	var ids []string
	for e, err := range s.ReadAll(context.Background(), 0, eventstore.Filter{}) {
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, e.ID.String())
	}
	return ids
}

func TestEventsExportImport(t *testing.T) {
	t.Parallel()
	src := map[string]string{"IDLOG_DATA_DIR": t.TempDir()}
	seedDataDir(t, src["IDLOG_DATA_DIR"])
	code, exported, stderr := runIdlog(t, src, "events", "export")
	if code != 0 || strings.Count(exported, "\n") != 5 || !strings.Contains(stderr, "exported 5 events") {
		t.Fatalf("export: exit %d, stdout %q, stderr %q", code, exported, stderr)
	}
	file := filepath.Join(t.TempDir(), "log.ndjson")
	if err := os.WriteFile(file, []byte(exported), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	// From a file (read twice in place) and from a pipe-like reader (spooled first).
	for name, in := range map[string]io.Reader{"file": f, "stream": strings.NewReader(exported)} {
		dst := map[string]string{"IDLOG_DATA_DIR": t.TempDir()}
		if code, _, stderr := runWithInput(t, in, dst, "events", "import"); code != 0 || !strings.Contains(stderr, "imported 5 events") {
			t.Fatalf("%s: import: exit %d, stderr %q", name, code, stderr)
		}
		if code, again, _ := runIdlog(t, dst, "events", "export"); code != 0 || again != exported {
			t.Fatalf("%s: export of the imported store differs:\n%s\n---\n%s", name, exported, again)
		}
		code, _, stderr := runWithInput(t, strings.NewReader(exported), dst, "events", "import")
		if code != 1 || !strings.Contains(stderr, "empty event store") {
			t.Fatalf("%s: a second import: exit %d, stderr %q; want a refusal", name, code, stderr)
		}
	}

	tampered := strings.Replace(exported, `{"i":3}`, `{"i":4}`, 1)
	code, _, stderr = runWithInput(t, strings.NewReader(tampered), map[string]string{"IDLOG_DATA_DIR": t.TempDir()}, "events", "import")
	if code != 1 || !strings.Contains(stderr, "chain does not hold") || !strings.Contains(stderr, "line 4") {
		t.Fatalf("tampered import: exit %d, stderr %q", code, stderr)
	}

	if code, _, stderr := runIdlog(t, src, "events", "-h"); code != 0 || !strings.Contains(stderr, "idlog events export") || !strings.Contains(stderr, "idlog events tail") {
		t.Fatalf("events -h: exit %d, stderr %q", code, stderr)
	}
}

func TestAuditSealAndVerify(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	env := map[string]string{"IDLOG_DATA_DIR": dir}
	ids := seedDataDir(t, dir)

	code, stdout, stderr := runIdlog(t, env, "audit", "verify")
	if code != 0 || !strings.Contains(stdout, "not sealed:    5 events") {
		t.Fatalf("verify before sealing: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if code, stdout, stderr := runIdlog(t, env, "audit", "seal"); code != 0 || !strings.Contains(stdout, "sealed up to ordinal 5") {
		t.Fatalf("seal: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if code, stdout, _ := runIdlog(t, env, "audit", "verify"); code != 0 || !strings.Contains(stdout, "verified:      5 events") || !strings.HasSuffix(stdout, "OK\n") {
		t.Fatalf("verify: exit %d, stdout %q", code, stdout)
	}

	db, err := sql.Open("sqlite", sqliteDSN(config.Config{DataDir: dir}.SQLitePath()))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`DELETE FROM events WHERE event_id = ?`, ids[2]); err != nil {
		t.Fatal(err)
	}
	code, stdout, _ = runIdlog(t, env, "audit", "verify", "-json")
	if code != 1 || !strings.Contains(stdout, `"kind": "deleted"`) || !strings.Contains(stdout, ids[2]) {
		t.Fatalf("verify after a deletion: exit %d, stdout %q", code, stdout)
	}
	code, stdout, _ = runIdlog(t, env, "audit", "verify")
	if code != 1 || !strings.Contains(stdout, "PROBLEM:       deleted") || !strings.Contains(stdout, ids[2]) {
		t.Fatalf("verify after a deletion: exit %d, stdout %q", code, stdout)
	}
	if !bytes.Contains([]byte(stdout), []byte("ordinal 3")) {
		t.Fatalf("the report does not name ordinal 3: %q", stdout)
	}
}
