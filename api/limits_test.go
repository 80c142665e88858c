package api_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/idlog/idlog/api"
	"github.com/idlog/idlog/attempts"
	"github.com/idlog/idlog/auth"
	"github.com/idlog/idlog/commands"
	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/migrations"
	"github.com/idlog/idlog/projections"
)

// Issue 12, item 1: with a stolen access token, 2FA was switched off by guessing codes at ~1,000
// a second. Now the sixth wrong code in a row waits, then waits longer; even the right code is
// refused until the wait ends, and every wrong one is recorded.
func TestOTPGuessesAreThrottled(t *testing.T) {
	t.Parallel()
	for _, b := range backends(t) {
		t.Run(b, func(t *testing.T) {
			t.Parallel()
			metrics := prometheus.NewRegistry()
			s := newServer(t, b, serverOptions{metrics: metrics})
			uid := s.signUp(t, "guessed@example.com", "")
			access := s.signIn(t, "guessed@example.com", "")
			secret := s.enableOTP(t, access)
			s.clock.Advance(time.Minute) // the enabling code is spent; the next ones are fresh

			for _, code := range wrongCodes(t, s, secret, commands.DefaultOTPPolicy.Free) {
				s.post("/api/v2/resource/otp/disable", obj{"code": code}, access).want(t, http.StatusUnprocessableEntity, "resource.otp.invalid_otp")
			}
			r := s.post("/api/v2/resource/otp/disable", obj{"code": s.totp(t, secret, 0)}, access)
			r.want(t, http.StatusTooManyRequests, "resource.otp.too_many_attempts")
			if r.header.Get("Retry-After") != "60" {
				t.Errorf("Retry-After = %q, want 60", r.header.Get("Retry-After"))
			}
			// One counter for the factor: /otp/verify and sign-in codes from a new address wait too.
			s.post("/api/v2/resource/otp/verify", obj{"code": s.totp(t, secret, 0)}, access).want(t, http.StatusTooManyRequests, "resource.otp.too_many_attempts")
			s.do(request{method: http.MethodPost, path: "/api/v2/identity/sessions", remote: "203.0.113.9:1",
				body: obj{"email": "guessed@example.com", "password": password, "otp_code": s.totp(t, secret, 0)}}).
				want(t, http.StatusTooManyRequests, "identity.session.too_many_attempts")

			// Recorded: an event per wrong code, a row in the owner's activity, a metric.
			failed := 0
			for _, e := range s.events(t) {
				if e.Type == "SecretCheckFailed" && e.StreamID == domain.UserStreamPrefix+uid {
					failed++
				}
			}
			if failed != commands.DefaultOTPPolicy.Free {
				t.Errorf("%d SecretCheckFailed events, want %d", failed, commands.DefaultOTPPolicy.Free)
			}
			waitFor(t, "the wrong codes in the activity log", func() bool {
				var rows []struct{ Action, Result string }
				s.get("/api/v2/resource/users/activity/otp", access).want(t, http.StatusOK).json(t, &rows)
				n := 0
				for _, row := range rows {
					if row.Action == "check" && row.Result == "failed" {
						n++
					}
				}
				return n == commands.DefaultOTPPolicy.Free
			})
			if n := counterValue(t, metrics, "otp", attempts.OutcomeFailed); n != float64(commands.DefaultOTPPolicy.Free) {
				t.Errorf("idlog_attempts_total{kind=otp,outcome=failed} = %v, want %d", n, commands.DefaultOTPPolicy.Free)
			}
			if n := counterValue(t, metrics, "otp", attempts.OutcomeThrottled); n != 3 {
				t.Errorf("idlog_attempts_total{kind=otp,outcome=throttled} = %v, want 3", n)
			}

			// After the wait, one more guess; a wrong one doubles the wait.
			s.clock.Advance(time.Minute)
			s.post("/api/v2/resource/otp/disable", obj{"code": wrongCodes(t, s, secret, 1)[0]}, access).want(t, http.StatusUnprocessableEntity)
			r = s.post("/api/v2/resource/otp/disable", obj{"code": s.totp(t, secret, 0)}, access).want(t, http.StatusTooManyRequests)
			if r.header.Get("Retry-After") != "120" {
				t.Errorf("Retry-After after one more failure = %q, want 120", r.header.Get("Retry-After"))
			}
			s.clock.Advance(2 * time.Minute)
			s.post("/api/v2/resource/otp/disable", obj{"code": s.totp(t, secret, 0)}, access).want(t, http.StatusOK)
		})
	}
}

// Issue 12, item 1: wrong passwords re-entered to confirm a change were not limited. All four
// routes share one counter per user.
func TestPasswordReentryIsThrottled(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, s *server) {
		uid := s.signUp(t, "reenter@example.com", "")
		access := s.signIn(t, "reenter@example.com", "")
		wrong := "not my password at all"
		tries := []request{
			{method: http.MethodPut, path: "/api/v2/resource/users/password", body: obj{"old_password": wrong, "new_password": "a brand new passphrase", "confirm_password": "a brand new passphrase"}},
			{method: http.MethodPut, path: "/api/v2/resource/users/email", body: obj{"email": "other@example.com", "password": wrong}},
			{method: http.MethodPut, path: "/api/v2/resource/users/username", body: obj{"username": "someone", "password": wrong}},
			{method: http.MethodDelete, path: "/api/v2/resource/users/me", body: obj{"password": wrong}},
			{method: http.MethodPut, path: "/api/v2/resource/users/username", body: obj{"username": "someone", "password": wrong}},
		}
		for _, rq := range tries {
			rq.token = access
			if r := s.do(rq); r.status != http.StatusUnprocessableEntity || !strings.Contains(r.body, "invalid_password") {
				t.Fatalf("%s %s: %d %s, want 422 invalid_password", rq.method, rq.path, r.status, r.body)
			}
		}
		// Even the right password now waits, on every route.
		for _, rq := range []request{
			{method: http.MethodPut, path: "/api/v2/resource/users/password", body: obj{"old_password": password, "new_password": "a brand new passphrase", "confirm_password": "a brand new passphrase"}},
			{method: http.MethodPut, path: "/api/v2/resource/users/email", body: obj{"email": "other@example.com", "password": password}},
			{method: http.MethodPut, path: "/api/v2/resource/users/username", body: obj{"username": "someone", "password": password}},
			{method: http.MethodDelete, path: "/api/v2/resource/users/me", body: obj{"password": password}},
		} {
			rq.token = access
			r := s.do(rq)
			if r.status != http.StatusTooManyRequests || !strings.HasSuffix(r.fields(t)["errors"].([]any)[0].(string), ".too_many_attempts") || r.header.Get("Retry-After") != "60" {
				t.Fatalf("%s %s with the right password: %d %s (Retry-After %q), want 429 for 60 s", rq.method, rq.path, r.status, r.body, r.header.Get("Retry-After"))
			}
		}
		failed := 0
		for _, e := range s.events(t) {
			if e.Type == "SecretCheckFailed" && e.StreamID == domain.UserStreamPrefix+uid {
				failed++
			}
		}
		if failed != len(tries) {
			t.Errorf("%d SecretCheckFailed events, want %d", failed, len(tries))
		}
		s.clock.Advance(time.Minute)
		s.do(request{method: http.MethodPut, path: "/api/v2/resource/users/username", body: obj{"username": "someone", "password": password}, token: access}).want(t, http.StatusOK)
	})
}

// Issue 12, item 2: five wrong passwords from anywhere locked the owner out for 15 minutes, again
// and again. Now an attacker's failures from address A do not slow the owner at address B, where
// they signed in before; from a new address C, the owner waits like the attacker.
func TestAttackerElsewhereCannotLockOwnerOut(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, s *server) {
		s.signUp(t, "owner@example.com", "")
		from := func(addr, pw string) response {
			return s.do(request{method: http.MethodPost, path: "/api/v2/identity/sessions", remote: addr + ":4711",
				body: obj{"login": "owner@example.com", "password": pw}})
		}
		from("198.51.100.2", password).want(t, http.StatusOK) // B: the owner's usual address
		for i := range 20 {
			r := from("203.0.113.1", "guess number "+fmt.Sprint(i)) // A: the attacker
			if i < commands.DefaultMaxFailedSignIns && r.status != http.StatusUnauthorized || i >= commands.DefaultMaxFailedSignIns && r.status != http.StatusTooManyRequests {
				t.Fatalf("guess %d: %d %s", i, r.status, r.body)
			}
		}
		from("203.0.113.1", password).want(t, http.StatusTooManyRequests, "identity.session.too_many_attempts")
		from("192.0.2.99", password).want(t, http.StatusTooManyRequests, "identity.session.too_many_attempts")
		from("198.51.100.2", password).want(t, http.StatusOK)
		// The owner's own typos at B slow B only.
		for range commands.DefaultMaxFailedSignIns {
			from("198.51.100.2", "my old password!").want(t, http.StatusUnauthorized)
		}
		from("198.51.100.2", password).want(t, http.StatusTooManyRequests)
	})
}

// Issue 12, item 2: unknown logins never got 429, so five tries told a real account from a fake.
// Now both get it after the same number of failures, with the same body and wait.
func TestUnknownLoginThrottledLikeKnownOne(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, s *server) {
		s.signUp(t, "real@example.com", "")
		answers := map[string][]response{}
		for _, login := range []string{"real@example.com", "fake@example.com"} {
			for i := range commands.DefaultMaxFailedSignIns + 1 {
				r := s.do(request{method: http.MethodPost, path: "/api/v2/identity/sessions", remote: fmt.Sprintf("203.0.113.%d:80", 10+i),
					body: obj{"login": login, "password": "wrong guess here"}})
				answers[login] = append(answers[login], r)
			}
		}
		real, fake := answers["real@example.com"], answers["fake@example.com"]
		for i := range real {
			if real[i].status != fake[i].status || real[i].body != fake[i].body || real[i].header.Get("Retry-After") != fake[i].header.Get("Retry-After") {
				t.Errorf("try %d: known %d %s (Retry-After %q), unknown %d %s (Retry-After %q)", i+1,
					real[i].status, real[i].body, real[i].header.Get("Retry-After"), fake[i].status, fake[i].body, fake[i].header.Get("Retry-After"))
			}
		}
		real[len(real)-1].want(t, http.StatusTooManyRequests, "identity.session.too_many_attempts")
	})
}

// Issue 12, item 2: the per-address limit blocked everyone behind one NAT. Now one user's failures
// there do not block the others; only many failures across logins (credential stuffing) close the
// address, and not for a login that signed in there before.
func TestNATAddressOneUserFailingDoesNotBlockOthers(t *testing.T) {
	t.Parallel()
	s := newServer(t, "sqlite", serverOptions{signIn: commands.SignInConfig{AddressMaxFailures: 12}})
	const nat = "100.64.0.1:5000"
	signIn := func(login, pw, remote string) response {
		return s.do(request{method: http.MethodPost, path: "/api/v2/identity/sessions", remote: remote, body: obj{"login": login, "password": pw}})
	}
	for _, u := range []string{"ann", "bob", "cid", "dan"} {
		s.signUp(t, u+"@example.com", "")
	}
	signIn("cid@example.com", password, nat).want(t, http.StatusOK)
	for range 30 {
		signIn("ann@example.com", "forgot it again", nat)
	}
	signIn("bob@example.com", password, nat).want(t, http.StatusOK)
	// Stuffing: many logins from one address reach its ceiling...
	for i := range 12 {
		signIn(fmt.Sprintf("user%d@example.com", i), "leaked password", nat)
	}
	signIn("dan@example.com", password, nat).want(t, http.StatusTooManyRequests, "identity.session.too_many_attempts")
	// ...but bob and cid, known at this address, still sign in there, and dan elsewhere.
	signIn("cid@example.com", password, nat).want(t, http.StatusOK)
	signIn("bob@example.com", password, nat).want(t, http.StatusOK)
	signIn("dan@example.com", password, "198.51.100.7:1").want(t, http.StatusOK)
}

// Issue 14: limits were per process (30 per address became 90 over 3 replicas). Two servers,
// each with its own limiter and connections, on one database share one count: of an address's
// failures, of a login's, and of a user's two-factor codes.
func TestLimitsAreSharedByReplicas(t *testing.T) {
	t.Parallel()
	for _, b := range backends(t) {
		t.Run(b, func(t *testing.T) {
			t.Parallel()
			cfg := commands.SignInConfig{AddressMaxFailures: 4}
			s := newServer(t, b, serverOptions{signIn: cfg})
			other := s.replica(t, cfg)
			both := []*server{s, other}
			s.signUp(t, "shared@example.com", "")
			access := s.signIn(t, "shared@example.com", "")
			secret := s.enableOTP(t, access)
			s.clock.Advance(time.Minute)
			for i, code := range wrongCodes(t, s, secret, commands.DefaultOTPPolicy.Free) {
				both[i%2].post("/api/v2/resource/otp/disable", obj{"code": code}, access).want(t, http.StatusUnprocessableEntity)
			}
			for _, replica := range both {
				replica.post("/api/v2/resource/otp/disable", obj{"code": s.totp(t, secret, 0)}, access).
					want(t, http.StatusTooManyRequests, "resource.otp.too_many_attempts")
			}

			for i := range 4 {
				both[i%2].post("/api/v2/identity/sessions", obj{"login": fmt.Sprintf("stuffed%d@example.com", i), "password": "leaked password"}, "").
					want(t, http.StatusUnauthorized)
			}
			for _, replica := range both {
				replica.post("/api/v2/identity/sessions", obj{"login": "stuffed9@example.com", "password": "leaked password"}, "").
					want(t, http.StatusTooManyRequests, "identity.session.too_many_attempts")
			}
		})
	}
}

// Issue 12, item 6: 300 reset requests for one address sent 300 messages. Now at most the limit's
// number go out (and as many events are stored), and every answer is the one a normal request
// gets, for a registered address or not.
func TestCodeRequestsAreCapped(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, s *server) {
		uid := s.signUp(t, "bombed@example.com", "")
		first := s.post("/api/v2/identity/users/password/generate_code", obj{"email": "bombed@example.com"}, "")
		first.want(t, http.StatusCreated)
		for i := range 299 {
			r := s.do(request{method: http.MethodPost, path: "/api/v2/identity/users/password/generate_code",
				remote: fmt.Sprintf("192.0.2.%d:1", i%250), body: obj{"email": "bombed@example.com"}})
			if r.status != first.status || r.body != first.body {
				t.Fatalf("request %d: %d %s, want %d %s", i+2, r.status, r.body, first.status, first.body)
			}
		}
		for range 50 {
			r := s.post("/api/v2/identity/users/password/generate_code", obj{"email": "nobody@example.com"}, "")
			if r.status != first.status || r.body != first.body {
				t.Fatalf("unknown address: %d %s, want %d %s", r.status, r.body, first.status, first.body)
			}
		}
		want := commands.DefaultCodeAccountPolicy.Free
		s.mail.mu.Lock()
		sent := len(s.mail.box[commands.NotifyPasswordReset+" bombed@example.com"])
		s.mail.mu.Unlock()
		if sent != want {
			t.Errorf("%d reset mails for 300 requests, want %d", sent, want)
		}
		events := 0
		for _, e := range s.events(t) {
			if e.Type == "PasswordResetRequested" && e.StreamID == domain.UserStreamPrefix+uid {
				events++
			}
		}
		if events != want {
			t.Errorf("%d PasswordResetRequested events, want %d", events, want)
		}
		// After the wait, one more.
		s.clock.Advance(commands.DefaultCodeAccountPolicy.Delay)
		s.post("/api/v2/identity/users/password/generate_code", obj{"email": "bombed@example.com"}, "").want(t, http.StatusCreated)
		s.mail.mu.Lock()
		sent = len(s.mail.box[commands.NotifyPasswordReset+" bombed@example.com"])
		s.mail.mu.Unlock()
		if sent != want+1 {
			t.Errorf("%d mails after the wait, want %d", sent, want+1)
		}
	})
}

// One client address asking codes for many addresses is capped too.
func TestCodeRequestsCappedPerClientAddress(t *testing.T) {
	t.Parallel()
	s := newServer(t, "sqlite", serverOptions{})
	n := commands.DefaultCodeAddressPolicy.Free + 10
	for i := range n {
		s.signUp(t, fmt.Sprintf("member%d@example.com", i), "")
	}
	s.mail.mu.Lock()
	before := len(s.mail.box)
	s.mail.mu.Unlock()
	for i := range n {
		s.do(request{method: http.MethodPost, path: "/api/v2/identity/users/password/generate_code", remote: "203.0.113.50:1",
			body: obj{"email": fmt.Sprintf("member%d@example.com", i)}}).want(t, http.StatusCreated)
	}
	s.mail.mu.Lock()
	sent := len(s.mail.box) - before
	s.mail.mu.Unlock()
	if sent != commands.DefaultCodeAddressPolicy.Free {
		t.Errorf("%d addresses got a reset mail from one client address, want %d", sent, commands.DefaultCodeAddressPolicy.Free)
	}
}

// enableOTP turns two-factor authentication on and returns the secret.
func (s *server) enableOTP(t *testing.T, access string) string {
	t.Helper()
	var qr struct{ URL string }
	s.post("/api/v2/resource/otp/generate_qrcode", nil, access).want(t, http.StatusCreated).json(t, &qr)
	u, err := url.Parse(qr.URL)
	if err != nil {
		t.Fatal(err)
	}
	secret := u.Query().Get("secret")
	s.post("/api/v2/resource/otp/enable", obj{"code": s.totp(t, secret, 0)}, access).want(t, http.StatusOK)
	return secret
}

// wrongCodes returns n codes that none of the steps the verifier accepts now would take.
func wrongCodes(t *testing.T, s *server, secret string, n int) []string {
	t.Helper()
	valid := map[string]bool{}
	for ahead := int64(-2); ahead <= 2; ahead++ {
		valid[s.totp(t, secret, ahead)] = true
	}
	var out []string
	for i := 0; len(out) < n; i++ {
		if c := fmt.Sprintf("%06d", i*7919%1000000); !valid[c] {
			out = append(out, c)
		}
	}
	return out
}

// waitFor polls cond until it holds, or fails the test after a few seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func counterValue(t *testing.T, reg *prometheus.Registry, kind, outcome string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "idlog_attempts_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["kind"] == kind && labels["outcome"] == outcome {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// replica is another server on the same database: its own command handlers, limiter and
// connections, as a second idlog serve would have; the read side is shared.
func (s *server) replica(t *testing.T, signIn commands.SignInConfig) *server {
	t.Helper()
	ctx := context.Background()
	var (
		db  *sqlx.DB
		err error
	)
	if s.dialect == migrations.SQLite {
		db, err = projections.OpenSQLite(ctx, s.at)
	} else {
		db, err = sqlx.Open("postgres", s.at)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	limiter, err := attempts.New(attempts.Options{DB: db, Dialect: s.dialect})
	if err != nil {
		t.Fatal(err)
	}
	hasher, err := auth.NewPasswordHasher(cheap)
	if err != nil {
		t.Fatal(err)
	}
	keys := s.store.(interface {
		KeyOwner(ctx context.Context, key string) (string, error)
	})
	app, err := commands.New(commands.Deps{
		Store: s.store, Keys: keys, Registry: domain.NewEventRegistry(), Hasher: hasher, Sealer: s.sealer, Tokens: s.signer,
		Notifier: s.mail, Attempts: limiter,
	}, commands.Config{Streams: commands.StreamsConfig{Now: s.clock.Now}, SignIn: signIn})
	if err != nil {
		t.Fatal(err)
	}
	accounts := *s.accounts
	accounts.App = app
	r := *s
	r.raw = api.NewServer(api.Options{Logger: slog.New(slog.DiscardHandler), Version: "test", Accounts: &accounts})
	r.h = validated(t, r.raw)
	return &r
}
