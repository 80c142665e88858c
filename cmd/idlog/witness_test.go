package main

import (
	"context"
	"database/sql"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/idlog/idlog/audit"
	"github.com/idlog/idlog/internal/config"
)

// serve POSTs its signed checkpoints to IDLOG_AUDIT_WITNESS_URL, where they open with the audit
// key, and publishes them to IDLOG_AUDIT, where `audit verify -checkpoint nats` finds them: the log
// verifies against them, and an event changed in the database afterwards does not.
func TestServeCheckpointsLeaveTheDatabase(t *testing.T) {
	t.Parallel()
	notes := make(chan string, 100)
	witness := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		notes <- string(body)
	}))
	defer witness.Close()
	dir := t.TempDir()
	env := map[string]string{
		"IDLOG_DATA_DIR": dir, "IDLOG_HTTP_ADDR": "127.0.0.1:0", "IDLOG_NATS_PORT": "0", "IDLOG_LOG_FORMAT": "json",
		"IDLOG_ARGON2_MEMORY": "64", "IDLOG_ARGON2_ITERATIONS": "1", "IDLOG_AUDIT_WITNESS_URL": witness.URL,
	}
	if code, _, stderr := runWithStdin(t, env, "a long enough passphrase", "users", "create", "--email", "root@example.com", "--password-stdin"); code != 0 {
		t.Fatalf("users create = %d: %s", code, stderr)
	}
	logs, stderr := newJSONLogs(t)
	ctx, cancel := context.WithCancel(t.Context())
	served := make(chan int, 1)
	go func() {
		served <- run(ctx, []string{"serve"}, &environment{stdout: io.Discard, stderr: stderr, getenv: func(k string) string { return env[k] }})
	}()
	defer func() {
		cancel()
		go func() {
			for range logs.lines {
			}
		}()
		<-served
	}()
	natsURL := logs.wait(t, "embedded NATS server listening")["url"].(string)
	logs.wait(t, "listening")
	var text string
	select {
	case text = <-notes:
	case <-time.After(60 * time.Second):
		t.Fatal("the witness received no checkpoint within 60s")
	}
	key, err := os.ReadFile(config.Config{DataDir: dir}.AuditKeyPath())
	if err != nil {
		t.Fatal(err)
	}
	_, vkey, err := audit.ParseAuditKey(key)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := note.Open([]byte(text), note.VerifierList(v)); err != nil {
		t.Fatalf("the witness's checkpoint %q does not open with the audit key: %v", text, err)
	}

	verifyEnv := map[string]string{"IDLOG_DATA_DIR": dir, "IDLOG_NATS_PORT": natsURL[strings.LastIndex(natsURL, ":")+1:]}
	code, stdout, errOut := runIdlog(t, verifyEnv, "audit", "verify", "-checkpoint", "nats")
	if code != 0 || !strings.Contains(stdout, "signed") {
		t.Fatalf("verify -checkpoint nats = %d, stdout %q, stderr %q", code, stdout, errOut)
	}
	db, err := sql.Open("sqlite", sqliteDSN(config.Config{DataDir: dir}.SQLitePath()))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`UPDATE events SET data = replace(data, '"role":"member"', '"role":"admin"') WHERE event_type = 'UserRegistered'`); err != nil {
		t.Fatal(err)
	}
	code, stdout, _ = runIdlog(t, verifyEnv, "audit", "verify", "-checkpoint", "nats")
	if code != 1 || !strings.Contains(stdout, "does not match a signed checkpoint") {
		t.Fatalf("verify -checkpoint nats after a change = %d, stdout %q", code, stdout)
	}
}
