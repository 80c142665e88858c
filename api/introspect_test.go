package api_test

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/idlog/idlog/apikeys"
	"github.com/idlog/idlog/attempts"
	"github.com/idlog/idlog/domain"
)

const introspectPath = "/api/v2/identity/introspect"

// passedFor is a little more than how long a right secret skips the attempt limiter.
func passedFor() time.Duration { return time.Minute + time.Second }

// basicAuth is the Authorization header of HTTP Basic with name and secret.
func basicAuth(name, secret string) http.Header {
	r, _ := http.NewRequest(http.MethodGet, "/", nil)
	r.SetBasicAuth(name, secret)
	return r.Header
}

// rsAuth is the test servers' introspection client's credentials.
func rsAuth() http.Header { return basicAuth("rs", introspectSecret) }

// signedHeader is the headers of a request signed with the API key kid at the server's clock.
func (s *server) signedHeader(t *testing.T, kid, secret string, ahead int64) http.Header {
	t.Helper()
	n := strconv.FormatInt(s.clock.Now().UnixMilli()+ahead, 10)
	sig, err := apikeys.Signature("HS256", []byte(secret), n, kid)
	if err != nil {
		t.Fatal(err)
	}
	return http.Header{apikeys.HeaderKID: {kid}, apikeys.HeaderNonce: {n}, apikeys.HeaderSignature: {sig}}
}

// apiKey makes an API key with scopes (comma separated; "" for none) for the holder of tok,
// whose 2FA secret is otp.
func (s *server) apiKey(t *testing.T, tok, otp, scopes string) apiKeyOut {
	t.Helper()
	body := obj{"algorithm": "HS256", "totp_code": s.nextCode(t, otp)}
	if scopes != "" {
		body["scope"] = scopes
	}
	var k apiKeyOut
	s.post("/api/v2/resource/api_keys", body, tok).want(t, http.StatusCreated).json(t, &k)
	return k
}

func TestIntrospection(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, s *server) {
		introspect := func(body any) response {
			return s.do(request{method: http.MethodPost, path: introspectPath, body: body, header: rsAuth()})
		}
		uid := s.signUp(t, "ann@example.com", "")
		tok := s.signIn(t, "ann@example.com", "")
		var out struct {
			Active         bool
			Sub, Sid, Role string
			Exp            int64
			TokenType      string `json:"token_type"`
		}
		introspect(url.Values{"token": {tok}}).want(t, http.StatusOK).json(t, &out)
		if !out.Active || out.Sub != uid || out.Sid == "" || out.Role != "member" || out.Exp == 0 || out.TokenType != "Bearer" {
			t.Fatalf("active token: %+v", out)
		}
		out = struct {
			Active         bool
			Sub, Sid, Role string
			Exp            int64
			TokenType      string `json:"token_type"`
		}{}
		introspect(url.Values{"token": {tok + "x"}}).want(t, http.StatusOK).json(t, &out)
		if out.Active || out.Sub != "" {
			t.Fatalf("forged token: %+v", out)
		}
		introspect(obj{}).want(t, http.StatusBadRequest, "identity.introspect.missing_token")

		// Signed out: inactive at once, though the token has not expired.
		s.send(http.MethodDelete, "/api/v2/identity/sessions", nil, tok).want(t, http.StatusNoContent)
		r := introspect(obj{"token": tok}).want(t, http.StatusOK)
		if r.body != `{"active":false}`+"\n" && r.body != `{"active":false}` {
			t.Fatalf("signed-out token: %s", r.body)
		}
	})
}

// Only resource servers may introspect (RFC 7662 §2.1): a configured client with HTTP Basic, or
// an API key of a user who may read users; wrong secrets go through the attempt limiter.
func TestIntrospectionAuthorizesItsCaller(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, s *server) {
		s.accounts.Introspection.Policy = attempts.Policy{Free: 3, Delay: 10 * time.Minute, MaxDelay: time.Hour, Forget: 2 * time.Hour}
		_, tok := s.staff(t, "ann", domain.RoleMember)
		_, adminTok := s.staff(t, "boss", domain.RoleAdmin)
		call := func(h http.Header, remote string) response {
			return s.do(request{method: http.MethodPost, path: introspectPath, body: obj{"token": tok}, header: h, remote: remote})
		}
		active := func(r response) bool {
			t.Helper()
			var out struct{ Active bool }
			r.want(t, http.StatusOK).json(t, &out)
			return out.Active
		}

		// Nobody else learns anything about a token: no credentials, wrong ones, a user's token.
		r := call(nil, "").want(t, http.StatusUnauthorized, "identity.introspect.unauthorized")
		if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Basic ") {
			t.Fatalf("WWW-Authenticate = %q", r.header.Get("WWW-Authenticate"))
		}
		call(basicAuth("rs", "wrong"), "").want(t, http.StatusUnauthorized, "identity.introspect.unauthorized")
		call(basicAuth("other", introspectSecret), "").want(t, http.StatusUnauthorized, "identity.introspect.unauthorized")
		call(http.Header{"Authorization": {"Bearer " + tok}}, "").want(t, http.StatusUnauthorized, "identity.introspect.unauthorized")
		if !active(call(rsAuth(), "")) {
			t.Fatal("the resource server's answer: inactive")
		}

		// API keys: a member's is not enough; an admin's is; a scoped admin key needs "identity".
		otp := s.enable2FA(t, tok)
		member := s.apiKey(t, tok, otp, "")
		call(s.signedHeader(t, member.KID, member.Secret, 0), "").want(t, http.StatusForbidden, "admin.ability.not_permitted")
		adminOTP := s.enable2FA(t, adminTok)
		admin := s.apiKey(t, adminTok, adminOTP, "")
		if !active(call(s.signedHeader(t, admin.KID, admin.Secret, 0), "")) {
			t.Fatal("an admin's key: inactive")
		}
		call(s.signedHeader(t, admin.KID, "wrong", 1), "").want(t, http.StatusUnauthorized, "authz.invalid_signature")
		trade := s.apiKey(t, adminTok, adminOTP, "trade")
		call(s.signedHeader(t, trade.KID, trade.Secret, 0), "").want(t, http.StatusUnauthorized, "authz.api_key_scope")
		identity := s.apiKey(t, adminTok, adminOTP, "identity,trade")
		if !active(call(s.signedHeader(t, identity.KID, identity.Secret, 0), "")) {
			t.Fatal("a key scoped to identity: inactive")
		}

		// Guessing secrets is throttled per address: there, even the right secret waits, unless
		// it was proved from that address within the minute (a resource server is not locked
		// out by a guesser behind the same address); other addresses do not wait.
		const guesser = "203.0.113.9:4000"
		throttled := false
		for range 10 {
			if r := call(basicAuth("rs", "guess"), guesser); r.status == http.StatusTooManyRequests {
				r.want(t, http.StatusTooManyRequests, "identity.introspect.too_many_attempts")
				throttled = r.header.Get("Retry-After") != ""
				break
			}
		}
		if !throttled {
			t.Fatal("wrong secrets were never throttled")
		}
		call(rsAuth(), guesser).want(t, http.StatusTooManyRequests, "identity.introspect.too_many_attempts")
		call(basicAuth("rs", "guess"), guesser).want(t, http.StatusTooManyRequests, "identity.introspect.too_many_attempts")
		if !active(call(rsAuth(), "198.51.100.7:4000")) {
			t.Fatal("another address: inactive")
		}
		// An address that proved the secret: its right secret is answered even while wrong ones
		// from it are throttled.
		if !active(call(rsAuth(), "")) {
			t.Fatal("the resource server's answer: inactive")
		}
		for range 10 {
			if r := call(basicAuth("rs", "guess"), ""); r.status == http.StatusTooManyRequests {
				break
			}
		}
		call(basicAuth("rs", "guess"), "").want(t, http.StatusTooManyRequests, "identity.introspect.too_many_attempts")
		if !active(call(rsAuth(), "")) {
			t.Fatal("the proved address: inactive")
		}
		// A minute later it is checked against the limiter again, and waits.
		s.clock.Advance(passedFor())
		call(rsAuth(), "").want(t, http.StatusTooManyRequests, "identity.introspect.too_many_attempts")
	})
}
