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

// serve answers the account routes: the first administrator made with users create signs in,
// a new user signs up and reads their account, and the keys are created private in the data
// directory.
func TestServeAccounts(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	env := map[string]string{
		"IDLOG_DATA_DIR": dir, "IDLOG_HTTP_ADDR": "127.0.0.1:0", "IDLOG_NATS_PORT": "none", "IDLOG_LOG_FORMAT": "json",
		"IDLOG_ARGON2_MEMORY": "64", "IDLOG_ARGON2_ITERATIONS": "1",
	}
	const password = "the operator's long passphrase"
	if code, _, stderr := runWithStdin(t, env, password, "users", "create", "--email", "root@example.com", "--password-stdin", "--role", "superadmin"); code != 0 {
		t.Fatalf("users create = %d: %s", code, stderr)
	}

	stderr := &syncBuffer{}
	ctx, stop := context.WithCancel(t.Context())
	served := make(chan int, 1)
	go func() {
		served <- run(ctx, []string{"serve"}, &environment{stdout: io.Discard, stderr: stderr, getenv: func(k string) string { return env[k] }})
	}()
	defer func() {
		stop()
		if code := <-served; code != 0 {
			t.Errorf("serve exited with %d", code)
		}
	}()
	lines := func() []map[string]any {
		var out []map[string]any
		for _, l := range strings.Split(stderr.String(), "\n") {
			var e map[string]any
			if json.Unmarshal([]byte(l), &e) == nil {
				out = append(out, e)
			}
		}
		return out
	}
	var base string
	for deadline := time.Now().Add(30 * time.Second); base == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for _, e := range lines() {
			if e["msg"] == "listening" {
				base = "http://" + e["addr"].(string)
			}
		}
	}
	if base == "" {
		t.Fatalf("serve did not listen within 30s: %s", stderr.String())
	}

	call := func(method, path, token string, body any) (int, map[string]any) {
		t.Helper()
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		req, _ := http.NewRequestWithContext(t.Context(), method, base+path, rd)
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

	code, session := call(http.MethodPost, "/api/v2/identity/sessions", "", map[string]string{"email": "root@example.com", "password": password})
	if code != http.StatusOK {
		t.Fatalf("admin sign-in = %d %v", code, session)
	}
	if u := session["user"].(map[string]any); u["role"] != "superadmin" || u["email_verified"] != true {
		t.Errorf("admin = %v", u)
	}
	code, user := call(http.MethodPost, "/api/v2/identity/users", "", map[string]string{"email": "new@example.com", "password": password})
	if code != http.StatusCreated || user["email"] != "new@example.com" {
		t.Fatalf("sign-up = %d %v", code, user)
	}
	_, session = call(http.MethodPost, "/api/v2/identity/sessions", "", map[string]string{"login": "new@example.com", "password": password})
	code, me := call(http.MethodGet, "/api/v2/resource/users/me", session["access_token"].(string), nil)
	if code != http.StatusOK || me["uid"] != user["uid"] {
		t.Errorf("me = %d %v", code, me)
	}
	if code, jwks := call(http.MethodGet, "/.well-known/jwks.json", "", nil); code != http.StatusOK || len(jwks["keys"].([]any)) != 1 {
		t.Errorf("jwks = %d %v", code, jwks)
	}
	for _, f := range []string{filepath.Join(dir, "keys", "signing.pem"), filepath.Join(dir, "keys", "secret.key")} {
		info, err := os.Stat(f)
		if err != nil || info.Mode().Perm() != 0o600 {
			t.Errorf("key file %s: %v, mode %v; want 0600", f, err, info.Mode())
		}
	}
	// The code went to the courier's mailbox, and the log says so without it.
	sent := false
	for deadline := time.Now().Add(30 * time.Second); !sent && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for _, e := range lines() {
			if msg, _ := e["msg"].(string); msg == "message delivered" && e["kind"] == "email_confirmation" && e["to"] == "new@example.com" {
				sent = true
			}
		}
	}
	for _, e := range lines() {
		if line, _ := json.Marshal(e); strings.Contains(string(line), password) {
			t.Errorf("log holds the password: %s", line)
		}
	}
	if !sent {
		t.Error("no log of the confirmation code's delivery")
	}
}
