package api_test

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/idlog/idlog/auth"
	"github.com/idlog/idlog/commands"
)

func TestSignUpValidation(t *testing.T) {
	t.Parallel()
	s := newServer(t, "sqlite", serverOptions{})
	s.signUp(t, "first@example.com", "first")
	users := "/api/v2/identity/users"
	s.post(users, obj{}, "").want(t, 422, "identity.user.missing_email", "identity.user.missing_password")
	s.post(users, url.Values{"email": {"a@example.com"}}, "").want(t, 422, "identity.user.missing_password")
	s.post(users, obj{"email": "nope", "password": password}, "").want(t, 422, "identity.user.invalid_email")
	s.post(users, obj{"email": "a@example.com", "password": password, "username": "no spaces"}, "").want(t, 422, "identity.user.invalid_username")
	s.post(users, obj{"email": "a@example.com", "password": password, "refid": "x"}, "").want(t, 422, "identity.user.invalid_referral_format")
	s.post(users, obj{"email": "a@example.com", "password": password, "refid": "ID0123456789"}, "").want(t, 422, "identity.user.referral_doesnt_exist")
	s.post(users, obj{"email": "a@example.com", "password": password, "data": "{not json"}, "").want(t, 422, "identity.user.invalid_data")
	s.post(users, obj{"email": "FIRST@example.com", "password": password}, "").want(t, 409, "identity.user.email_taken")
	s.post(users, obj{"email": "a@example.com", "password": password, "username": "First"}, "").want(t, 409, "identity.user.username_taken")

	r := s.post(users, obj{"email": "a@example.com", "password": "Summer2024!"}, "").want(t, 422, "identity.user.weak_password")
	if reason, _ := r.fields(t)["reason"].(string); !strings.HasPrefix(reason, "Too easy to guess") {
		t.Errorf("weak password reason = %q", reason)
	}
	s.do(request{method: http.MethodPost, path: users, header: http.Header{"Content-Type": {"application/json"}}}).
		want(t, 422, "identity.user.missing_email", "identity.user.missing_password")
	big := s.post(users, obj{"email": "a@example.com", "password": password, "data": strings.Repeat("x", 70<<10)}, "")
	big.want(t, http.StatusRequestEntityTooLarge, "request.body_too_large")

	req := httpRequest(http.MethodPost, users, "{", "application/json")
	s.do(req).want(t, http.StatusBadRequest, "request.malformed_body")

	// A referrer that exists is accepted.
	var ref struct{ UID string }
	s.post(users, obj{"email": "referrer@example.com", "password": password}, "").json(t, &ref)
	s.post(users, obj{"email": "referred@example.com", "password": password, "refid": ref.UID}, "").want(t, http.StatusCreated)
}

func httpRequest(method, path, body, contentType string) request {
	return request{method: method, path: path, body: rawBody(body), header: http.Header{"Content-Type": {contentType}}}
}

// rawBody is a body sent as it is.
type rawBody string

func TestSignInErrorsLookAlike(t *testing.T) {
	t.Parallel()
	s := newServer(t, "sqlite", serverOptions{})
	s.signUp(t, "alike@example.com", "alike")
	sessions := "/api/v2/identity/sessions"
	s.post(sessions, obj{}, "").want(t, 422, "identity.session.missing_login", "identity.session.missing_password")
	var bodies []string
	for _, body := range []obj{
		{"login": "alike@example.com", "password": "wrong password here"},
		{"login": "nobody@example.com", "password": password},
		{"login": "nobody", "password": password},
		{"email": "alike@example.com", "password": "another wrong one"},
	} {
		r := s.post(sessions, body, "").want(t, http.StatusUnauthorized, "identity.session.invalid_params")
		bodies = append(bodies, r.body)
	}
	for _, b := range bodies[1:] {
		if b != bodies[0] {
			t.Errorf("bodies differ: %q", bodies)
		}
	}
}

// An unknown login takes about as long as a wrong password: both hash, and the unknown one waits
// as long as recording a failure takes.
func TestSignInTimingAlike(t *testing.T) {
	if testing.Short() {
		t.Skip("timing test")
	}
	s := newServer(t, "sqlite", serverOptions{
		params: auth.Params{Memory: 4096, Iterations: 2, Parallelism: 1, SaltLength: 16, KeyLength: 32},
		signIn: commands.SignInConfig{MaxFailures: -1, AddressMaxFailures: -1},
	})
	s.signUp(t, "timing@example.com", "")
	measure := func(login string) time.Duration {
		start := time.Now()
		s.post("/api/v2/identity/sessions", obj{"login": login, "password": "wrong password here"}, "").want(t, http.StatusUnauthorized)
		return time.Since(start)
	}
	var known, unknown []time.Duration
	// 80 of each, in a shuffled order, so that load on the machine, the read models applying the
	// last failure in the background and the garbage collector hit both alike. (In a fixed
	// alternation the collector's cycle fell in step with it: each 4 MiB argon2 buffer of one kind
	// came from pages the process had just been given, which fault, and cost 1.2 ms more than the
	// other kind's, the same kind all along a run.)
	order := make([]bool, 160)
	for i := range 80 {
		order[i] = true
	}
	rand.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	for i, isKnown := range order {
		if isKnown {
			known = append(known, measure("timing@example.com"))
		} else {
			unknown = append(unknown, measure(fmt.Sprintf("nobody%d@example.com", i)))
		}
	}
	median := func(d []time.Duration) time.Duration {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		return d[len(d)/2]
	}
	k, u := median(known[20:]), median(unknown[20:])
	t.Logf("median: wrong password %v, unknown login %v", k, u)
	if ratio := float64(u) / float64(k); ratio < 0.65 || ratio > 1.35 {
		t.Errorf("unknown login takes %v, wrong password %v: more than 35%% apart", u, k)
	}
}

func TestSignInThrottled(t *testing.T) {
	t.Parallel()
	s := newServer(t, "sqlite", serverOptions{signIn: commands.SignInConfig{MaxFailures: 2, Lockout: time.Minute, AddressMaxFailures: -1}})
	s.signUp(t, "slow@example.com", "")
	for range 2 {
		s.post("/api/v2/identity/sessions", obj{"login": "slow@example.com", "password": "wrong password here"}, "").want(t, http.StatusUnauthorized)
	}
	r := s.post("/api/v2/identity/sessions", obj{"login": "slow@example.com", "password": password}, "")
	r.want(t, http.StatusTooManyRequests, "identity.session.too_many_attempts")
	if r.header.Get("Retry-After") != "60" {
		t.Errorf("Retry-After = %q, want 60", r.header.Get("Retry-After"))
	}
	if !strings.Contains(s.logs.String(), `"msg":"sign-in throttled"`) {
		t.Error("the throttled sign-in is not recorded in the log")
	}
	s.clock.Advance(time.Minute)
	s.signIn(t, "slow@example.com", "")
}

func TestPasswordReset(t *testing.T) {
	t.Parallel()
	s := newServer(t, "sqlite", serverOptions{})
	s.signUp(t, "forgot@example.com", "")
	old := s.signIn(t, "forgot@example.com", "")
	gen := "/api/v2/identity/users/password/generate_code"
	known := s.post(gen, obj{"email": "forgot@example.com"}, "").want(t, http.StatusCreated)
	unknown := s.post(gen, obj{"email": "never@example.com"}, "").want(t, http.StatusCreated)
	if known.body != unknown.body {
		t.Errorf("generate_code answers %q for a known address, %q for an unknown one", known.body, unknown.body)
	}
	s.post(gen, obj{"email": "bad"}, "").want(t, 422, "identity.password.invalid_email")
	token := s.mail.last(t, commands.NotifyPasswordReset, "forgot@example.com")

	confirm := "/api/v2/identity/users/password/confirm_code"
	const next = "my new and long passphrase"
	s.post(confirm, obj{"reset_password_token": token}, "").want(t, 422, "identity.password.missing_password", "identity.password.missing_confirm_password")
	s.post(confirm, obj{"reset_password_token": token, "password": next, "confirm_password": next + "x"}, "").want(t, 422, "identity.password.passwords_doesnt_match")
	s.post(confirm, obj{"reset_password_token": "ID0000000000.x", "password": next, "confirm_password": next}, "").want(t, 422, "identity.password.invalid_token")
	s.post(confirm, obj{"reset_password_token": token, "password": next, "confirm_password": next}, "").want(t, http.StatusCreated)
	s.post(confirm, obj{"reset_password_token": token, "password": next, "confirm_password": next}, "").want(t, 422, "identity.password.invalid_token")

	s.get("/api/v2/resource/users/me", old).want(t, http.StatusUnauthorized, "authz.invalid_session")
	s.post("/api/v2/identity/sessions", obj{"login": "forgot@example.com", "password": next}, "").want(t, http.StatusOK)
}

func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	s := newServer(t, "sqlite", serverOptions{})
	key := http.Header{"Idempotency-Key": {"signup-42"}}
	body := obj{"email": "once@example.com", "password": password}
	first := s.do(request{method: http.MethodPost, path: "/api/v2/identity/users", body: body, header: key}).want(t, http.StatusCreated)
	n := len(s.events(t))
	again := s.do(request{method: http.MethodPost, path: "/api/v2/identity/users", body: body, header: key}).want(t, http.StatusCreated)
	if again.body != first.body || again.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("retry answered %s (replayed %q), want %s", again.body, again.header.Get("Idempotent-Replayed"), first.body)
	}
	if len(s.events(t)) != n {
		t.Error("the retry appended events")
	}
	// Anonymous callers cannot be told apart: the same key with another body is another caller's
	// request, never an answer of the first.
	other := s.do(request{method: http.MethodPost, path: "/api/v2/identity/users", body: obj{"email": "twice@example.com", "password": password}, header: key}).
		want(t, http.StatusCreated)
	if other.body == first.body || other.header.Get("Idempotent-Replayed") != "" {
		t.Errorf("another anonymous body with the key got the first answer: %s", other.body)
	}
	s.do(request{method: http.MethodPost, path: "/api/v2/identity/users", body: body, header: http.Header{"Idempotency-Key": {"bad key"}}}).
		want(t, http.StatusUnprocessableEntity, "idempotency.invalid_key")

	// Signed in: the key is the caller's own; a sign-in retried gets the same token.
	signIn := request{method: http.MethodPost, path: "/api/v2/identity/sessions", body: obj{"login": "once@example.com", "password": password}, header: http.Header{"Idempotency-Key": {"s1"}}}
	a, b := s.do(signIn).want(t, http.StatusOK), s.do(signIn).want(t, http.StatusOK)
	if a.body != b.body {
		t.Error("a retried sign-in got another answer")
	}
	token := a.fields(t)["access_token"].(string)
	put := request{method: http.MethodPut, path: "/api/v2/resource/users/me", token: token, body: obj{"data": obj{"n": 1}}, header: http.Header{"Idempotency-Key": {"d1"}}}
	s.do(put).want(t, http.StatusOK)
	n = len(s.events(t))
	s.do(put).want(t, http.StatusOK)
	if len(s.events(t)) != n {
		t.Error("a retried PUT appended events")
	}
	// A signed-in caller's key with another body is a mistake of the client.
	put.body = obj{"data": obj{"n": 2}}
	s.do(put).want(t, http.StatusUnprocessableEntity, "idempotency.key_reused")
	if len(s.events(t)) != n {
		t.Error("a reused key appended events")
	}
}

// User data is an object or an array, as the contract says: a bare value, even spelt as Barong's
// string of JSON text ("\"\"" was found by the fuzzer), is refused and appends nothing.
func TestUserDataMustBeObjectOrArray(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, s *server) {
		s.signUp(t, "shape@example.com", "")
		token := s.signIn(t, "shape@example.com", "")
		before := len(s.events(t))
		for _, data := range []any{`"\"\""`, "12", "true", 12, `"abc"`} {
			s.do(request{method: http.MethodPut, path: "/api/v2/resource/users/me", token: token, body: obj{"data": data}}).
				want(t, http.StatusUnprocessableEntity, "resource.user.invalid_data")
		}
		if after := len(s.events(t)); after != before {
			t.Errorf("refused data appended %d events", after-before)
		}
		s.do(request{method: http.MethodPut, path: "/api/v2/resource/users/me", token: token, body: obj{"data": `["a"]`}}).want(t, http.StatusOK)
		if me := s.get("/api/v2/resource/users/me", token).want(t, http.StatusOK).fields(t); fmt.Sprint(me["data"]) != "[a]" {
			t.Errorf("data after an array = %v", me["data"])
		}
	})
}

// A change is visible to the very next read.
func TestReadYourWrites(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, s *server) {
		s.signUp(t, "ryw@example.com", "")
		token := s.signIn(t, "ryw@example.com", "")
		for i := range 10 {
			data := fmt.Sprintf(`{"n":%d}`, i)
			s.do(request{method: http.MethodPut, path: "/api/v2/resource/users/me", token: token, body: obj{"data": data}}).want(t, http.StatusOK)
			var me struct{ Data map[string]int }
			s.get("/api/v2/resource/users/me", token).want(t, http.StatusOK).json(t, &me)
			if me.Data["n"] != i {
				t.Fatalf("after PUT %s, GET shows %v", data, me.Data)
			}
		}
		var me struct{ Username string }
		s.do(request{method: http.MethodPut, path: "/api/v2/resource/users/username", token: token, body: obj{"username": "Reader", "password": password}}).want(t, http.StatusOK)
		s.get("/api/v2/resource/users/me", token).want(t, http.StatusOK).json(t, &me)
		if me.Username != "reader" {
			t.Errorf("username after PUT = %q", me.Username)
		}
		s.do(request{method: http.MethodPut, path: "/api/v2/resource/users/email", token: token, body: obj{"email": "ryw2@example.com", "password": password}}).want(t, http.StatusOK)
		me2 := s.get("/api/v2/resource/users/me", token).want(t, http.StatusOK).fields(t)
		if me2["email"] != "ryw2@example.com" || me2["email_verified"] != false {
			t.Errorf("after the email change: %v", me2)
		}
		s.mail.last(t, commands.NotifyEmailConfirmation, "ryw2@example.com")
	})
}

func TestPublicRoutes(t *testing.T) {
	t.Parallel()
	s := newServer(t, "sqlite", serverOptions{})
	uid := s.signUp(t, "public@example.com", "shown")
	r := s.get("/api/v2/public/users/"+uid, "").want(t, http.StatusOK)
	if strings.TrimSpace(r.body) != `{"uid":"`+uid+`","username":"shown"}` {
		t.Errorf("public user = %s", r.body)
	}
	s.get("/api/v2/public/users/ID0000000000", "").want(t, http.StatusNotFound, "record.not_found")
	if s.get("/api/v2/identity/ping", "").want(t, 200).fields(t)["ping"] != "pong" {
		t.Error("ping")
	}
	if tm := s.get("/api/v2/identity/time", "").want(t, 200).fields(t)["time"].(float64); time.Since(time.Unix(int64(tm), 0)) > time.Minute {
		t.Errorf("time = %v", tm)
	}
	if v := s.get("/api/v2/identity/version", "").want(t, 200).fields(t)["version"]; v != "test" {
		t.Errorf("version = %v", v)
	}
	if c := s.get("/api/v2/identity/configs", "").want(t, 200).fields(t); c["session_expire_time"] != 900.0 {
		t.Errorf("configs = %v", c)
	}
	v := s.post("/api/v2/identity/password/validate", obj{"password": "abc"}, "").want(t, 200).fields(t)
	if v["strong"] != false || v["reason"] == "" {
		t.Errorf("validate weak = %v", v)
	}
	v = s.post("/api/v2/identity/password/validate", url.Values{"password": {password}}, "").want(t, 200).fields(t)
	if v["strong"] != true || v["entropy"].(float64) < 36 {
		t.Errorf("validate strong = %v", v)
	}
	s.get("/api/v2/resource/nope", "").want(t, http.StatusNotFound, "route.not_found")
}

// A new TOTP secret is never replayed: a retry with the same key makes another one.
func TestGenerateQRCodeIgnoresIdempotencyKey(t *testing.T) {
	t.Parallel()
	s := newServer(t, "sqlite", serverOptions{})
	s.signUp(t, "qr@example.com", "")
	token := s.signIn(t, "qr@example.com", "")
	gen := request{method: http.MethodPost, path: "/api/v2/resource/otp/generate_qrcode", token: token, header: http.Header{"Idempotency-Key": {"qr-1"}}}
	var a, b struct{ URL string }
	s.do(gen).want(t, http.StatusCreated).json(t, &a)
	s.do(gen).want(t, http.StatusCreated).json(t, &b)
	if a.URL == "" || b.URL == "" || a.URL == b.URL {
		t.Errorf("two generations gave %q and %q, want two different secrets", a.URL, b.URL)
	}
}
