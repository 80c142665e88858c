package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/idlog/idlog/audit"
	"github.com/idlog/idlog/internal/config"
)

// serve POSTs its signed checkpoints to IDLOG_AUDIT_WITNESS_URL; they open with the audit key.
func TestServePostsCheckpointsToTheWitness(t *testing.T) {
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
	startServe(t, env)
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
}
