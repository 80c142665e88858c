package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// startServe runs serve in-process with env until the test ends or stop is called; it returns
// the base URL.
func startServe(t *testing.T, env map[string]string) (base string, stop func()) {
	t.Helper()
	stderr := &syncBuffer{}
	ctx, cancel := context.WithCancel(t.Context())
	served := make(chan int, 1)
	go func() {
		served <- run(ctx, []string{"serve"}, &environment{stdout: io.Discard, stderr: stderr, getenv: func(k string) string { return env[k] }})
	}()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if code := <-served; code != 0 {
			t.Errorf("serve exited with %d: %s", code, stderr.String())
		}
	}
	t.Cleanup(stop)
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for _, l := range strings.Split(stderr.String(), "\n") {
			var e map[string]any
			if json.Unmarshal([]byte(l), &e) == nil && e["msg"] == "listening" {
				return "http://" + e["addr"].(string), stop
			}
		}
		select {
		case code := <-served:
			t.Fatalf("serve exited with %d: %s", code, stderr.String())
		default:
		}
	}
	t.Fatalf("serve did not listen within 30s: %s", stderr.String())
	return "", nil
}

func callJSON(t *testing.T, method, url, token string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequestWithContext(t.Context(), method, url, rd)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(res.Body).Decode(&out)
	return res.StatusCode, out
}

// The signing key rotates without signing anyone out: after the rotation a token of the old key
// is still accepted, and the old key is in the JWKS, while IDLOG_SIGNING_KEY_PREVIOUS_UNTIL has
// not passed; from then on the old token is refused and the JWKS holds the new key alone.
func TestSigningKeyRotation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	env := map[string]string{
		"IDLOG_DATA_DIR": dir, "IDLOG_HTTP_ADDR": "127.0.0.1:0", "IDLOG_NATS_PORT": "none", "IDLOG_LOG_FORMAT": "json",
		"IDLOG_ARGON2_MEMORY": "64", "IDLOG_ARGON2_ITERATIONS": "1",
	}
	const password = "a long rotation passphrase 42"
	base, stop := startServe(t, env)
	if code, body := callJSON(t, http.MethodPost, base+"/api/v2/identity/users", "", map[string]string{"email": "rot@example.com", "password": password}); code != http.StatusCreated {
		t.Fatalf("sign-up = %d %v", code, body)
	}
	signIn := func(base string) string {
		t.Helper()
		code, body := callJSON(t, http.MethodPost, base+"/api/v2/identity/sessions", "", map[string]string{"login": "rot@example.com", "password": password})
		token, _ := body["access_token"].(string)
		if code != http.StatusOK || token == "" {
			t.Fatalf("sign-in = %d %v", code, body)
		}
		return token
	}
	oldToken := signIn(base)
	stop()

	// The rotation: the key file is set aside, serve makes a new one at start.
	keys := filepath.Join(dir, "keys")
	if err := os.Rename(filepath.Join(keys, "signing.pem"), filepath.Join(keys, "signing-1.pem")); err != nil {
		t.Fatal(err)
	}
	env["IDLOG_SIGNING_KEY_PREVIOUS_FILES"] = filepath.Join(keys, "signing-1.pem")
	env["IDLOG_SIGNING_KEY_PREVIOUS_UNTIL"] = time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	base, stop = startServe(t, env)
	if code, body := callJSON(t, http.MethodGet, base+"/api/v2/resource/users/me", oldToken, nil); code != http.StatusOK {
		t.Errorf("within the grace, the old key's token: %d %v, want 200", code, body)
	}
	if _, jwks := callJSON(t, http.MethodGet, base+"/.well-known/jwks.json", "", nil); len(jwks["keys"].([]any)) != 2 {
		t.Errorf("within the grace the JWKS = %v, want the new and the old key", jwks)
	}
	newToken := signIn(base)
	stop()

	env["IDLOG_SIGNING_KEY_PREVIOUS_UNTIL"] = time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	base, _ = startServe(t, env)
	if code, body := callJSON(t, http.MethodGet, base+"/api/v2/resource/users/me", oldToken, nil); code != http.StatusUnauthorized {
		t.Errorf("after the grace, the old key's token: %d %v, want 401", code, body)
	}
	if code, body := callJSON(t, http.MethodGet, base+"/api/v2/resource/users/me", newToken, nil); code != http.StatusOK {
		t.Errorf("after the grace, the new key's token: %d %v, want 200", code, body)
	}
	if _, jwks := callJSON(t, http.MethodGet, base+"/.well-known/jwks.json", "", nil); len(jwks["keys"].([]any)) != 1 {
		t.Errorf("after the grace the JWKS = %v, want the new key alone", jwks)
	}
}
