package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// startServe runs serve with env until the test stops it, and returns its base URL and the
// function that stops it (and checks it exited well).
func startServe(t *testing.T, env map[string]string) (string, func()) {
	t.Helper()
	stderr := &syncBuffer{}
	ctx, cancel := context.WithCancel(t.Context())
	served := make(chan int, 1)
	go func() {
		served <- run(ctx, []string{"serve"}, &environment{stdout: io.Discard, stderr: stderr, getenv: func(k string) string { return env[k] }})
	}()
	stop := func() {
		cancel()
		if code := <-served; code != 0 {
			t.Errorf("serve exited with %d: %s", code, stderr.String())
		}
	}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for _, l := range strings.Split(stderr.String(), "\n") {
			var e map[string]any
			if json.Unmarshal([]byte(l), &e) == nil && e["msg"] == "listening" {
				return "http://" + e["addr"].(string), stop
			}
		}
	}
	stop()
	t.Fatalf("serve did not listen within 30s: %s", stderr.String())
	return "", nil
}

// A sign-up retried after serve restarted gets the first answer again, from the data directory,
// and makes no second account; the same key with another body is another anonymous caller's.
func TestServeKeepsIdempotentAnswersAcrossRestarts(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"IDLOG_DATA_DIR": t.TempDir(), "IDLOG_HTTP_ADDR": "127.0.0.1:0", "IDLOG_NATS_PORT": "none", "IDLOG_LOG_FORMAT": "json",
		"IDLOG_ARGON2_MEMORY": "64", "IDLOG_ARGON2_ITERATIONS": "1",
	}
	signUp := func(base, email string) (int, string, string) {
		t.Helper()
		body, _ := json.Marshal(map[string]string{"email": email, "password": "a long enough passphrase here"})
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, base+"/api/v2/identity/users", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", "signup-1")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b), res.Header.Get("Idempotent-Replayed")
	}

	base, stop := startServe(t, env)
	code, first, _ := signUp(base, "once@example.com")
	stop()
	if code != http.StatusCreated {
		t.Fatalf("sign-up = %d %s", code, first)
	}

	base, stop = startServe(t, env)
	defer stop()
	code, again, replayed := signUp(base, "once@example.com")
	if code != http.StatusCreated || again != first || replayed != "true" {
		t.Fatalf("retry after a restart = %d %s (replayed %q), want the first answer %s", code, again, replayed, first)
	}
	code, other, replayed := signUp(base, "other@example.com")
	if code != http.StatusCreated || other == first || replayed != "" {
		t.Fatalf("another body with the key = %d %s (replayed %q), want a new account", code, other, replayed)
	}
}
