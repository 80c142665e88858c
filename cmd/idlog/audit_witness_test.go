package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/idlog/idlog/audit"
	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/eventstore/sqlite"
	"github.com/idlog/idlog/internal/config"
)

// TestServePostsCheckpointsToWitness: serve with IDLOG_AUDIT_WITNESS_URL POSTs its signed
// checkpoints to the witness, which opens them with the audit public key of the data directory.
func TestServePostsCheckpointsToWitness(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var mu sync.Mutex
	var heads []audit.TreeHead
	var refused []string
	witness := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		key, err := os.ReadFile(config.Config{DataDir: dir}.AuditKeyPath())
		_, vkey, kerr := audit.ParseAuditKey(key)
		_, note, ok := bytes.Cut(body, []byte("\n\n")) // after "old N" and the proof lines
		mu.Lock()
		defer mu.Unlock()
		if err != nil || kerr != nil || !ok || !bytes.HasPrefix(body, []byte("old ")) {
			refused = append(refused, string(body))
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		h, err := audit.OpenCheckpoint(note, vkey)
		if err != nil {
			refused = append(refused, err.Error())
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		heads = append(heads, h)
	}))
	t.Cleanup(witness.Close)

	logs, stderr := newJSONLogs(t)
	ctx, stop := context.WithCancel(t.Context())
	env := map[string]string{"IDLOG_DATA_DIR": dir, "IDLOG_HTTP_ADDR": "127.0.0.1:0", "IDLOG_NATS_PORT": "0",
		"IDLOG_LOG_FORMAT": "json", "IDLOG_AUDIT_WITNESS_URL": witness.URL + "/add-checkpoint"}
	served := make(chan int, 1)
	go func() {
		served <- run(ctx, []string{"serve"}, &environment{stdout: io.Discard, stderr: stderr, getenv: func(k string) string { return env[k] }})
	}()
	defer func() {
		stop()
		if code := <-served; code != 0 {
			t.Errorf("serve exited %d", code)
		}
	}()
	logs.wait(t, "listening")

	s, err := sqlite.Open(t.Context(), sqlite.Options{Path: filepath.Join(dir, "idlog.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Append(t.Context(), eventstore.Append{Stream: "user-ID0000000001", Expected: eventstore.NoStream,
		Events: []eventstore.NewEvent{{ID: uuid.Must(uuid.NewV7()), Type: "UserRegistered", SchemaVersion: 1, Data: json.RawMessage(`{"email":"a@example.com"}`)}},
	}); err != nil {
		t.Fatal(err)
	}
	// serve checkpoints at most 10 s after an event is sealed.
	deadline := time.Now().Add(60 * time.Second)
	for {
		mu.Lock()
		n, r := len(heads), append([]string(nil), refused...)
		var last audit.TreeHead
		if n > 0 {
			last = heads[n-1]
		}
		mu.Unlock()
		if len(r) > 0 {
			t.Fatalf("the witness refused: %q", r)
		}
		if n > 0 && last.Size >= 1 {
			if !strings.HasPrefix(last.Origin, "idlog-audit") {
				t.Errorf("checkpoint origin %q", last.Origin)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no checkpoint reached the witness within 60 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
