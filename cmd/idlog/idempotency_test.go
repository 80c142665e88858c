package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"
)

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
