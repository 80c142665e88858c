package api_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/idlog/idlog/api"
	"github.com/idlog/idlog/auth"
)

// Every way a token can be wrong gets 401 and nothing of the user.
func TestForgedAndExpiredTokens(t *testing.T) {
	t.Parallel()
	s := newServer(t, "sqlite", serverOptions{})
	uid := s.signUp(t, "forge@example.com", "")
	good := s.signIn(t, "forge@example.com", "")
	claims, err := s.signer.Verify(good)
	if err != nil {
		t.Fatal(err)
	}
	// A token made by the same key with other settings, signed at another time.
	signWith := func(key ed25519.PrivateKey, cfg auth.SignerConfig) string {
		t.Helper()
		signer, err := auth.NewSigner(key, cfg)
		if err != nil {
			t.Fatal(err)
		}
		tok, _, err := signer.Sign(auth.AccessClaims{UserID: uid, SessionID: claims.SessionID, Role: "admin"})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	header, payload, _ := strings.Cut(good, ".")
	payload, sig, _ := strings.Cut(payload, ".")
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + payload + "."
	hs := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": uid, "sid": claims.SessionID, "iss": "idlog", "aud": "idlog",
		"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()})
	hs.Header["kid"] = s.signer.KeyID()
	pub := s.key.Public().(ed25519.PublicKey)
	hsToken, _ := hs.SignedString([]byte(pub)) // the public key as an HMAC secret: the classic confusion
	var tampered map[string]any
	raw, _ := base64.RawURLEncoding.DecodeString(payload)
	json.Unmarshal(raw, &tampered)
	tampered["role"] = "superadmin"
	tp, _ := json.Marshal(tampered)

	past := func() time.Time { return s.clock.Now().Add(-time.Hour) }
	for name, tok := range map[string]string{
		"alg none":        none,
		"HS256":           hsToken,
		"other key":       signWith(otherKey, auth.SignerConfig{Issuer: "idlog", Audience: "idlog"}),
		"wrong audience":  signWith(s.key, auth.SignerConfig{Issuer: "idlog", Audience: "elsewhere"}),
		"wrong issuer":    signWith(s.key, auth.SignerConfig{Issuer: "mallory", Audience: "idlog"}),
		"expired":         signWith(s.key, auth.SignerConfig{Issuer: "idlog", Audience: "idlog", Now: past}),
		"tampered claims": header + "." + base64.RawURLEncoding.EncodeToString(tp) + "." + sig,
		"garbage":         "not.a.token",
	} {
		r := s.get("/api/v2/resource/users/me", tok)
		if r.status != http.StatusUnauthorized || strings.TrimSpace(r.body) != `{"errors":["jwt.decode_and_verify"]}` {
			t.Errorf("%s: %d %s, want 401 jwt.decode_and_verify", name, r.status, r.body)
		}
	}
	for name, h := range map[string]string{"no header": "", "basic": "Basic Zm9vOmJhcg==", "empty bearer": "Bearer "} {
		r := s.do(request{method: http.MethodGet, path: "/api/v2/resource/users/me", header: http.Header{"Authorization": {h}}})
		r.want(t, http.StatusUnauthorized, "authz.missing_token")
		if r.header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: no WWW-Authenticate", name)
		}
	}
	// The good token still works; once the clock passes its expiry, it does not.
	s.get("/api/v2/resource/users/me", good).want(t, http.StatusOK)
	s.clock.Advance(auth.DefaultAccessTokenTTL + auth.DefaultLeeway + time.Second)
	s.get("/api/v2/resource/users/me", good).want(t, http.StatusUnauthorized, "jwt.decode_and_verify")
	// The reason is in the log, not in the answer.
	if !strings.Contains(s.logs.String(), "access token expired") {
		t.Error("the refusal's reason is not logged")
	}
}

// A valid token whose session ended is refused at once: sign-out, password change, account deletion.
func TestRevokedSessions(t *testing.T) {
	t.Parallel()
	s := newServer(t, "sqlite", serverOptions{})
	s.signUp(t, "revoke@example.com", "")
	mine, other := s.signIn(t, "revoke@example.com", ""), s.signIn(t, "revoke@example.com", "")

	const next = "a different long passphrase"
	s.do(request{method: http.MethodPut, path: "/api/v2/resource/users/password", token: mine,
		body: obj{"old_password": password, "new_password": next, "confirm_password": next}}).want(t, http.StatusOK)
	s.get("/api/v2/resource/users/me", other).want(t, http.StatusUnauthorized, "authz.invalid_session")
	s.get("/api/v2/resource/users/me", mine).want(t, http.StatusOK)
	s.post("/api/v2/identity/sessions", obj{"login": "revoke@example.com", "password": password}, "").want(t, http.StatusUnauthorized, "identity.session.invalid_params")

	s.do(request{method: http.MethodDelete, path: "/api/v2/resource/users/me", token: mine, body: obj{"password": "nope nope nope"}}).
		want(t, http.StatusUnprocessableEntity, "resource.user.invalid_password")
	s.do(request{method: http.MethodDelete, path: "/api/v2/resource/users/me", token: mine, body: obj{"password": next}}).want(t, http.StatusNoContent)
	s.get("/api/v2/resource/users/me", mine).want(t, http.StatusUnauthorized, "authz.invalid_session")
	s.post("/api/v2/identity/sessions", obj{"login": "revoke@example.com", "password": next}, "").want(t, http.StatusUnauthorized, "identity.session.not_active")
}

func TestJWKSVerifiesTokens(t *testing.T) {
	t.Parallel()
	s := newServer(t, "sqlite", serverOptions{})
	s.signUp(t, "jwks@example.com", "")
	tok := s.signIn(t, "jwks@example.com", "")
	var set auth.JWKS
	s.get("/.well-known/jwks.json", "").want(t, http.StatusOK).json(t, &set)
	if len(set.Keys) != 1 || set.Keys[0].Kid != s.signer.KeyID() || set.Keys[0].Alg != "EdDSA" {
		t.Fatalf("JWKS = %+v", set)
	}
	x, _ := base64.RawURLEncoding.DecodeString(set.Keys[0].X)
	parsed, err := jwt.Parse(tok, func(*jwt.Token) (any, error) { return ed25519.PublicKey(x), nil }, jwt.WithValidMethods([]string{"EdDSA"}))
	if err != nil || !parsed.Valid {
		t.Errorf("the published key does not verify a token: %v", err)
	}
}

func TestRequireRole(t *testing.T) {
	t.Parallel()
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	h := api.RequireRole("admin", "superadmin")(ok)
	for _, tt := range []struct {
		caller *api.Caller
		want   int
	}{
		{nil, http.StatusUnauthorized},
		{&api.Caller{UID: "ID0000000001", Role: "member"}, http.StatusForbidden},
		{&api.Caller{UID: "ID0000000001", Role: "admin"}, http.StatusNoContent},
	} {
		req, _ := http.NewRequest(http.MethodGet, "/", nil)
		if tt.caller != nil {
			req = req.WithContext(api.WithCaller(req.Context(), *tt.caller))
		}
		rec := &recorder{header: http.Header{}}
		h.ServeHTTP(rec, req)
		if rec.status != tt.want {
			t.Errorf("caller %+v: %d, want %d", tt.caller, rec.status, tt.want)
		}
	}
}

type recorder struct {
	header http.Header
	status int
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(b []byte) (int, error) { return len(b), nil }
func (r *recorder) WriteHeader(code int)        { r.status = code }
