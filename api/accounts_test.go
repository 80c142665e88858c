package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idlog/idlog/auth"
	"github.com/idlog/idlog/commands"
)

// totp returns the code of secret at the step of the server's clock plus ahead.
func (s *server) totp(t *testing.T, secret string, ahead int64) string {
	t.Helper()
	code, err := auth.TOTPCode(secret, auth.TOTPStep(s.clock.Now())+ahead)
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// The whole journey of issue 4: sign up, confirm the email, sign in, turn 2FA on, sign in with a
// code, sign out; then no password, token, secret or code is in any stored event or log line.
func TestAccountJourney(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, s *server) {
		secrets := []string{password}

		// Sign up, JSON body.
		var user map[string]any
		r := s.post("/api/v2/identity/users", obj{"email": " Journey@Example.com", "password": password, "username": "Traveller", "data": `{"lang":"en"}`}, "")
		r.want(t, http.StatusCreated).json(t, &user)
		uid, _ := user["uid"].(string)
		if user["email"] != "journey@example.com" || user["username"] != "traveller" || user["state"] != "active" || user["otp"] != false {
			t.Fatalf("sign-up answered %s", r.body)
		}
		if d, _ := json.Marshal(user["data"]); string(d) != `{"lang":"en"}` {
			t.Errorf("data = %s", d)
		}

		// Confirm the email, form body.
		token := s.mail.last(t, commands.NotifyEmailConfirmation, "journey@example.com")
		secrets = append(secrets, token)
		r = s.post("/api/v2/identity/users/email/confirm_code", url.Values{"token": {token}}, "").want(t, http.StatusCreated)
		if r.fields(t)["email_verified"] != true {
			t.Errorf("confirm answered %s", r.body)
		}
		s.post("/api/v2/identity/users/email/confirm_code", obj{"token": token}, "").want(t, http.StatusConflict, "identity.user.already_verified")

		// Sign in, by email and by username.
		access := s.signIn(t, "journey@example.com", "")
		secrets = append(secrets, access, s.signIn(t, "traveller", ""))
		me := s.get("/api/v2/resource/users/me", access).want(t, http.StatusOK).fields(t)
		if me["uid"] != uid || me["email_verified"] != true {
			t.Errorf("me = %v", me)
		}

		// Turn two-factor authentication on.
		var qr struct{ Barcode, URL string }
		s.post("/api/v2/resource/otp/generate_qrcode", nil, access).want(t, http.StatusCreated).json(t, &qr)
		u, err := url.Parse(qr.URL)
		if err != nil || u.Scheme != "otpauth" || qr.Barcode == "" {
			t.Fatalf("generate_qrcode = %+v", qr)
		}
		secret := u.Query().Get("secret")
		secrets = append(secrets, secret)
		s.post("/api/v2/resource/otp/enable", obj{"code": "000000x"}, access).want(t, http.StatusUnprocessableEntity, "resource.otp.invalid_otp")
		enabling := s.totp(t, secret, 0)
		r = s.post("/api/v2/resource/otp/enable", obj{"code": enabling}, access).want(t, http.StatusOK)
		if r.fields(t)["otp"] != true {
			t.Errorf("enable answered %s", r.body)
		}

		// Sign in with a code: none, a wrong one, the spent one, then a fresh one once.
		signIn := func(code string) response {
			return s.post("/api/v2/identity/sessions", obj{"email": "journey@example.com", "password": password, "otp_code": code}, "")
		}
		signIn("").want(t, http.StatusForbidden, "identity.session.missing_otp")
		signIn("123").want(t, http.StatusForbidden, "identity.session.invalid_otp")
		signIn(enabling).want(t, http.StatusForbidden, "identity.session.invalid_otp")
		fresh := s.totp(t, secret, 1)
		var session struct {
			AccessToken string    `json:"access_token"`
			TokenType   string    `json:"token_type"`
			ExpiresIn   int       `json:"expires_in"`
			ExpiresAt   time.Time `json:"expires_at"`
			User        struct{ UID string }
		}
		r = signIn(fresh).want(t, http.StatusOK)
		r.json(t, &session)
		if session.TokenType != "Bearer" || session.User.UID != uid || session.ExpiresIn < 890 || session.ExpiresIn > 900 || r.header.Get("Cache-Control") != "no-store" {
			t.Errorf("sign-in answered %s (Cache-Control %q)", r.body, r.header.Get("Cache-Control"))
		}
		secrets = append(secrets, session.AccessToken)
		signIn(fresh).want(t, http.StatusForbidden, "identity.session.invalid_otp") // replayed
		s.get("/api/v2/resource/users/me", session.AccessToken).want(t, http.StatusOK)

		// Sign out: that token is refused from now on, the others still work.
		s.do(request{method: http.MethodDelete, path: "/api/v2/identity/sessions", token: session.AccessToken}).want(t, http.StatusNoContent)
		s.get("/api/v2/resource/users/me", session.AccessToken).want(t, http.StatusUnauthorized, "authz.invalid_session")
		s.get("/api/v2/resource/users/me", access).want(t, http.StatusOK)

		// No secret anywhere: event data, metadata, log lines.
		events := s.events(t)
		if len(events) < 10 {
			t.Fatalf("only %d events stored", len(events))
		}
		codes := []string{enabling, fresh}
		for _, e := range events {
			md, _ := json.Marshal(e.Metadata)
			where := fmt.Sprintf("event %d %s", e.GlobalPosition, e.Type)
			noSecrets(t, where, string(e.Data)+string(md), secrets, codes)
		}
		logs := s.logs.String()
		if !strings.Contains(logs, `"msg":"email code sent"`) || !strings.Contains(logs, `"to":"journey@example.com"`) {
			t.Errorf("the development notifier did not log the hand-off:\n%s", logs)
		}
		for _, line := range strings.Split(logs, "\n") {
			noSecrets(t, "log line", line, secrets, codes)
		}
	})
}

// noSecrets fails if text holds a secret, or a 6-digit code as a value of its own.
func noSecrets(t *testing.T, where, text string, secrets, codes []string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && strings.Contains(text, s) {
			t.Errorf("%s holds a secret (%.12s...): %.300s", where, s, text)
		}
	}
	for _, c := range codes {
		if strings.Contains(text, `"`+c+`"`) || strings.Contains(text, "="+c) {
			t.Errorf("%s holds the TOTP code %s: %.300s", where, c, text)
		}
	}
}

// Fifty sign-ups of one address (then of one username) at once: one 201, forty-nine 409.
func TestConcurrentSignUps(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, s *server) {
		for _, field := range []string{"email", "username"} {
			statuses := map[int]int{}
			codes := map[string]int{}
			var mu sync.Mutex
			var wg sync.WaitGroup
			for i := range 50 {
				wg.Go(func() {
					body := obj{"email": "same@example.com", "username": fmt.Sprintf("user%d", i), "password": password}
					if field == "username" {
						body = obj{"email": fmt.Sprintf("user%d@example.com", i), "username": "same", "password": password}
					}
					r := s.post("/api/v2/identity/users", body, "")
					mu.Lock()
					defer mu.Unlock()
					statuses[r.status]++
					if r.status != http.StatusCreated {
						var e struct{ Errors []string }
						_ = json.Unmarshal([]byte(r.body), &e)
						codes[strings.Join(e.Errors, ",")]++
					}
				})
			}
			wg.Wait()
			want := "identity.user." + field + "_taken"
			if statuses[201] != 1 || statuses[409] != 49 || codes[want] != 49 {
				t.Errorf("%s: statuses %v, codes %v; want one 201 and 49 409 %s", field, statuses, codes, want)
			}
		}
	})
}
