package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// startCourierServe runs idlog serve in-process over the data directory dir, with extra settings, and
// returns its base URL.
func startCourierServe(t *testing.T, dir string, extra map[string]string) string {
	t.Helper()
	env := map[string]string{
		"IDLOG_DATA_DIR": dir, "IDLOG_HTTP_ADDR": "127.0.0.1:0", "IDLOG_NATS_PORT": "none", "IDLOG_LOG_FORMAT": "json",
		"IDLOG_ARGON2_MEMORY": "64", "IDLOG_ARGON2_ITERATIONS": "1",
	}
	for k, v := range extra {
		env[k] = v
	}
	base, _ := startServe(t, env)
	return base
}

func postJSON(t *testing.T, url string, body map[string]string) int {
	t.Helper()
	b, _ := json.Marshal(body)
	res, err := http.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode/100 != 2 {
		t.Logf("POST %s = %d %s", url, res.StatusCode, msg)
	}
	return res.StatusCode
}

// mailedCode waits until `idlog courier ls` lists n messages, then reads the code of the last one
// with `idlog courier show`.
func mailedCode(t *testing.T, dir string, n int, subject string) string {
	t.Helper()
	env := map[string]string{"IDLOG_DATA_DIR": dir}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		code, out, errOut := runIdlog(t, env, "courier", "ls")
		if code != 0 {
			t.Fatalf("courier ls: %d %s", code, errOut)
		}
		if strings.Count(out, "\n")-1 >= n {
			if !strings.Contains(out, subject) {
				t.Fatalf("courier ls shows no %q:\n%s", subject, out)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the mailbox has not %d messages within 30s:\n%s", n, out)
		}
	}
	code, out, errOut := runIdlog(t, env, "courier", "show")
	if code != 0 {
		t.Fatalf("courier show: %d %s", code, errOut)
	}
	if !strings.Contains(out, "Subject: "+subject) {
		t.Fatalf("courier show prints no %q:\n%s", subject, out)
	}
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		if strings.HasSuffix(l, "code:") {
			for _, next := range lines[i+1:] {
				if s := strings.TrimSpace(next); s != "" {
					return s
				}
			}
		}
	}
	t.Fatalf("no code in:\n%s", out)
	return ""
}

// TestQuickStartMailboxJourney is the README's quick start: with nothing configured, sign up, read
// the code with idlog courier ls|show, confirm, then reset the password the same way.
func TestQuickStartMailboxJourney(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	base := startCourierServe(t, dir, nil)
	const email = "quick@example.com"
	if s := postJSON(t, base+"/api/v2/identity/users", map[string]string{"email": email, "password": "Correct-Horse-9-battery"}); s != http.StatusCreated {
		t.Fatalf("sign up: %d", s)
	}
	code := mailedCode(t, dir, 1, "Confirm your email address")
	if s := postJSON(t, base+"/api/v2/identity/users/email/confirm_code", map[string]string{"token": code}); s != http.StatusCreated {
		t.Fatalf("confirm with the mailed code: %d", s)
	}
	if s := postJSON(t, base+"/api/v2/identity/users/password/generate_code", map[string]string{"email": email}); s != http.StatusCreated {
		t.Fatalf("ask for a reset code: %d", s)
	}
	reset := mailedCode(t, dir, 2, "Reset your password")
	if s := postJSON(t, base+"/api/v2/identity/users/password/confirm_code", map[string]string{
		"reset_password_token": reset, "password": "New-Staple-77-horses", "confirm_password": "New-Staple-77-horses"}); s != http.StatusCreated {
		t.Fatalf("reset with the mailed code: %d", s)
	}
	if s := postJSON(t, base+"/api/v2/identity/sessions", map[string]string{"email": email, "password": "New-Staple-77-horses"}); s != http.StatusOK {
		t.Fatalf("sign in with the new password: %d", s)
	}
}
