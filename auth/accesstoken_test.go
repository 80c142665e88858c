package auth_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/idlog/idlog/auth"
)

var issued = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// clock is a settable time for a Signer.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.now = t }

func newKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newSigner(t *testing.T, key ed25519.PrivateKey, edit func(*auth.SignerConfig)) (*auth.Signer, *clock) {
	t.Helper()
	c := &clock{now: issued}
	cfg := auth.SignerConfig{Issuer: "idlog", Audience: "idlog-api", Now: c.Now}
	if edit != nil {
		edit(&cfg)
	}
	s, err := auth.NewSigner(key, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s, c
}

var alice = auth.AccessClaims{UserID: "ID00000000A1", SessionID: "sess-1", Role: "member", Level: 1, Email: "alice@example.com"}

func TestAccessTokenRoundTrip(t *testing.T) {
	t.Parallel()
	s, c := newSigner(t, newKey(t), nil)
	c.Set(issued.Add(400 * time.Millisecond)) // truncated to the second in the token
	token, signed, err := s.Sign(alice)
	if err != nil {
		t.Fatal(err)
	}
	want := alice
	want.IssuedAt, want.ExpiresAt = issued, issued.Add(15*time.Minute)
	if signed != want {
		t.Fatalf("signed claims = %+v, want %+v", signed, want)
	}
	header, payload := decodeParts(t, token)
	if header["alg"] != "EdDSA" || header["kid"] != s.KeyID() || header["typ"] != "JWT" {
		t.Errorf("header = %v", header)
	}
	for k, v := range map[string]any{"sub": "ID00000000A1", "sid": "sess-1", "role": "member", "level": 1.0,
		"email": "alice@example.com", "iss": "idlog", "iat": float64(issued.Unix()), "exp": float64(issued.Unix() + 900)} {
		if payload[k] != v {
			t.Errorf("claim %s = %v, want %v", k, payload[k], v)
		}
	}
	if aud, _ := payload["aud"].([]any); len(aud) != 1 || aud[0] != "idlog-api" {
		t.Errorf("aud = %v", payload["aud"])
	}

	c.Set(issued.Add(14 * time.Minute))
	got, err := s.Verify(token)
	if err != nil || got != want {
		t.Fatalf("Verify = %+v, %v; want %+v", got, err, want)
	}
	// Within the leeway after expiry: accepted; after it: refused.
	c.Set(issued.Add(15*time.Minute + 20*time.Second))
	if _, err := s.Verify(token); err != nil {
		t.Errorf("20 s after expiry (leeway 30 s): %v", err)
	}
	c.Set(issued.Add(15*time.Minute + 31*time.Second))
	if _, err := s.Verify(token); !errors.Is(err, auth.ErrAccessToken) || !errors.Is(err, auth.ErrAccessTokenExpired) {
		t.Errorf("31 s after expiry: %v, want ErrAccessTokenExpired", err)
	}
}

func TestSignRequiresSubjectAndSession(t *testing.T) {
	t.Parallel()
	s, _ := newSigner(t, newKey(t), nil)
	for _, c := range []auth.AccessClaims{{SessionID: "s"}, {UserID: "ID00000000A1"}} {
		if _, _, err := s.Sign(c); !errors.Is(err, auth.ErrAccessTokenClaims) {
			t.Errorf("Sign(%+v) = %v, want ErrAccessTokenClaims", c, err)
		}
	}
}

// TestForgedAccessTokens: every way to forge or misuse a token is refused with its own error.
func TestForgedAccessTokens(t *testing.T) {
	t.Parallel()
	key := newKey(t)
	s, c := newSigner(t, key, nil)
	pub := key.Public().(ed25519.PublicKey)
	good, _, err := s.Sign(alice)
	if err != nil {
		t.Fatal(err)
	}
	c.Set(issued.Add(time.Minute))

	claims := func(edit func(jwt.MapClaims)) jwt.MapClaims {
		m := jwt.MapClaims{"sub": alice.UserID, "sid": alice.SessionID, "role": "superadmin", "level": 3,
			"iss": "idlog", "aud": []string{"idlog-api"}, "iat": issued.Unix(), "exp": issued.Add(time.Hour).Unix()}
		if edit != nil {
			edit(m)
		}
		return m
	}
	sign := func(m jwt.SigningMethod, k any, kid string, mc jwt.MapClaims) string {
		tok := jwt.NewWithClaims(m, mc)
		if kid != "" {
			tok.Header["kid"] = kid
		}
		str, err := tok.SignedString(k)
		if err != nil {
			t.Fatal(err)
		}
		return str
	}
	other := newKey(t)
	otherKid := auth.KeyID(other.Public().(ed25519.PublicKey))
	parts := strings.Split(good, ".")
	_, payload := decodeParts(t, good)
	payload["role"] = "superadmin"
	tamperedPayload, _ := json.Marshal(payload)

	for _, tc := range []struct {
		name  string
		token string
		want  error
	}{
		{"alg none", sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, s.KeyID(), claims(nil)), auth.ErrAccessTokenAlgorithm},
		{"alg none, signature kept", func() string {
			h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT","kid":"` + s.KeyID() + `"}`))
			return h + "." + parts[1] + "." + parts[2]
		}(), auth.ErrAccessTokenAlgorithm},
		{"HS256 keyed with the public key", sign(jwt.SigningMethodHS256, []byte(pub), s.KeyID(), claims(nil)), auth.ErrAccessTokenAlgorithm},
		{"HS256 keyed with the public key's base64", sign(jwt.SigningMethodHS256, []byte(base64.RawURLEncoding.EncodeToString(pub)), s.KeyID(), claims(nil)), auth.ErrAccessTokenAlgorithm},
		{"unknown algorithm", func() string {
			h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"XS512","typ":"JWT","kid":"` + s.KeyID() + `"}`))
			return h + "." + parts[1] + "." + parts[2]
		}(), auth.ErrAccessTokenAlgorithm},
		{"another Ed25519 key", sign(jwt.SigningMethodEdDSA, other, otherKid, claims(nil)), auth.ErrAccessTokenUnknownKey},
		{"another Ed25519 key claiming our kid", sign(jwt.SigningMethodEdDSA, other, s.KeyID(), claims(nil)), auth.ErrAccessTokenSignature},
		{"no kid", sign(jwt.SigningMethodEdDSA, key, "", claims(nil)), auth.ErrAccessTokenUnknownKey},
		{"payload changed after signing", parts[0] + "." + base64.RawURLEncoding.EncodeToString(tamperedPayload) + "." + parts[2], auth.ErrAccessTokenSignature},
		{"signature of another token", parts[0] + "." + parts[1] + "." + strings.Split(sign(jwt.SigningMethodEdDSA, key, s.KeyID(), claims(nil)), ".")[2], auth.ErrAccessTokenSignature},
		{"wrong audience", sign(jwt.SigningMethodEdDSA, key, s.KeyID(), claims(func(m jwt.MapClaims) { m["aud"] = []string{"other-api"} })), auth.ErrAccessTokenAudience},
		{"no audience", sign(jwt.SigningMethodEdDSA, key, s.KeyID(), claims(func(m jwt.MapClaims) { delete(m, "aud") })), auth.ErrAccessTokenClaims},
		{"wrong issuer", sign(jwt.SigningMethodEdDSA, key, s.KeyID(), claims(func(m jwt.MapClaims) { m["iss"] = "barong" })), auth.ErrAccessTokenIssuer},
		{"expired", sign(jwt.SigningMethodEdDSA, key, s.KeyID(), claims(func(m jwt.MapClaims) { m["exp"] = issued.Add(-time.Minute).Unix() })), auth.ErrAccessTokenExpired},
		{"no expiry", sign(jwt.SigningMethodEdDSA, key, s.KeyID(), claims(func(m jwt.MapClaims) { delete(m, "exp") })), auth.ErrAccessTokenClaims},
		{"issued in the future", sign(jwt.SigningMethodEdDSA, key, s.KeyID(), claims(func(m jwt.MapClaims) { m["iat"] = issued.Add(time.Hour).Unix() })), auth.ErrAccessTokenNotYetValid},
		{"no issued-at", sign(jwt.SigningMethodEdDSA, key, s.KeyID(), claims(func(m jwt.MapClaims) { delete(m, "iat") })), auth.ErrAccessTokenClaims},
		{"no session", sign(jwt.SigningMethodEdDSA, key, s.KeyID(), claims(func(m jwt.MapClaims) { delete(m, "sid") })), auth.ErrAccessTokenClaims},
		{"no subject", sign(jwt.SigningMethodEdDSA, key, s.KeyID(), claims(func(m jwt.MapClaims) { delete(m, "sub") })), auth.ErrAccessTokenClaims},
		{"garbage", "not.a.token", auth.ErrAccessTokenMalformed},
		{"empty", "", auth.ErrAccessTokenMalformed},
		{"header without alg", base64.RawURLEncoding.EncodeToString([]byte(`{"typ":"JWT"}`)) + "." + parts[1] + "." + parts[2], auth.ErrAccessTokenMalformed},
		{"two parts", parts[0] + "." + parts[1], auth.ErrAccessTokenMalformed},
	} {
		got, err := s.Verify(tc.token)
		if !errors.Is(err, auth.ErrAccessToken) || !errors.Is(err, tc.want) {
			t.Errorf("%s: Verify = %+v, %v; want %v", tc.name, got, err, tc.want)
		}
		if got != (auth.AccessClaims{}) {
			t.Errorf("%s: refused token still returned claims %+v", tc.name, got)
		}
	}
	// The control: the same forging helper with our key and claims gives an accepted token.
	if _, err := s.Verify(sign(jwt.SigningMethodEdDSA, key, s.KeyID(), claims(nil))); err != nil {
		t.Fatalf("control token refused: %v", err)
	}
}

func TestKeyRotation(t *testing.T) {
	t.Parallel()
	oldKey, newKey := newKey(t), newKey(t)
	oldSigner, _ := newSigner(t, oldKey, nil)
	oldToken, _, err := oldSigner.Sign(alice)
	if err != nil {
		t.Fatal(err)
	}
	oldPub := oldKey.Public().(ed25519.PublicKey)
	rotated, _ := newSigner(t, newKey, func(c *auth.SignerConfig) { c.PreviousKeys = []ed25519.PublicKey{oldPub, oldPub} })
	if _, err := rotated.Verify(oldToken); err != nil {
		t.Errorf("token of the previous key refused after rotation: %v", err)
	}
	newToken, _, _ := rotated.Sign(alice)
	if _, err := oldSigner.Verify(newToken); !errors.Is(err, auth.ErrAccessTokenUnknownKey) {
		t.Errorf("old signer verifying a new token: %v, want ErrAccessTokenUnknownKey", err)
	}
	set := rotated.JWKS()
	if len(set.Keys) != 2 || set.Keys[0].Kid != rotated.KeyID() || set.Keys[1].Kid != oldSigner.KeyID() {
		t.Fatalf("JWKS = %+v, want the new key then the old one, once", set)
	}
}

func TestJWKS(t *testing.T) {
	t.Parallel()
	key := newKey(t)
	s, _ := newSigner(t, key, nil)
	b, err := json.Marshal(s.JWKS())
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Keys []map[string]string `json:"keys"`
	}
	if err := json.Unmarshal(b, &doc); err != nil || len(doc.Keys) != 1 {
		t.Fatalf("JWKS JSON %s: %v", b, err)
	}
	k := doc.Keys[0]
	x, err := base64.RawURLEncoding.DecodeString(k["x"])
	if err != nil || !bytes.Equal(x, key.Public().(ed25519.PublicKey)) {
		t.Errorf("x = %q does not decode to the public key", k["x"])
	}
	for name, want := range map[string]string{"kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA", "kid": s.KeyID()} {
		if k[name] != want {
			t.Errorf("JWK %s = %q, want %q", name, k[name], want)
		}
	}
	if len(k) != 6 {
		t.Errorf("JWK has members %v; a public key set must hold nothing else (no private part)", k)
	}
}

// TestKeyIDIsTheRFC7638Thumbprint uses the Ed25519 key of RFC 8037, appendix A.
func TestKeyIDIsTheRFC7638Thumbprint(t *testing.T) {
	t.Parallel()
	seed, _ := base64.RawURLEncoding.DecodeString("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A")
	pub := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	if x := base64.RawURLEncoding.EncodeToString(pub); x != "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo" {
		t.Fatalf("public key of the RFC seed = %s", x)
	}
	if got := auth.KeyID(pub); got != "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k" {
		t.Errorf("KeyID = %s, want RFC 8037's thumbprint", got)
	}
}

func TestNewSignerConfig(t *testing.T) {
	t.Parallel()
	key := newKey(t)
	for name, cfg := range map[string]auth.SignerConfig{
		"no issuer":      {Audience: "a"},
		"no audience":    {Issuer: "i"},
		"negative TTL":   {Issuer: "i", Audience: "a", TTL: -time.Second},
		"negative skew":  {Issuer: "i", Audience: "a", Leeway: -time.Second},
		"short prev key": {Issuer: "i", Audience: "a", PreviousKeys: []ed25519.PublicKey{make([]byte, 5)}},
	} {
		if _, err := auth.NewSigner(key, cfg); err == nil {
			t.Errorf("%s: NewSigner accepted %+v", name, cfg)
		}
	}
	if _, err := auth.NewSigner(key[:10], auth.SignerConfig{Issuer: "i", Audience: "a"}); err == nil {
		t.Error("NewSigner accepted a short key")
	}
	s, err := auth.NewSigner(key, auth.SignerConfig{Issuer: "i", Audience: "a"})
	if err != nil || s.TTL() != 15*time.Minute {
		t.Errorf("default TTL = %v, %v; want 15m", s.TTL(), err)
	}
}

func TestLoadOrCreateSigningKey(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "data", "jwt.pem")
	key, err := auth.LoadOrCreateSigningKey(path)
	if err != nil {
		t.Fatal(err)
	}
	assertMode(t, path, 0o600)
	pemBytes, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(pemBytes), "-----BEGIN PRIVATE KEY-----\n") {
		t.Errorf("key file is not a PKCS#8 PEM:\n%s", pemBytes)
	}
	again, err := auth.LoadOrCreateSigningKey(path)
	if err != nil || !key.Equal(again) {
		t.Fatalf("second load gives another key: %v", err)
	}
	// A token signed before a restart verifies after it.
	s1, _ := newSigner(t, key, nil)
	s2, _ := newSigner(t, again, nil)
	tok, _, _ := s1.Sign(alice)
	if _, err := s2.Verify(tok); err != nil {
		t.Errorf("token refused after reloading the key: %v", err)
	}

	bad := filepath.Join(t.TempDir(), "bad.pem")
	if err := os.WriteFile(bad, []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := auth.LoadOrCreateSigningKey(bad); !errors.Is(err, auth.ErrKeyInvalid) {
		t.Errorf("bad PEM: %v, want ErrKeyInvalid", err)
	}
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := auth.LoadOrCreateSigningKey(path); !errors.Is(err, auth.ErrKeyFileMode) {
		t.Errorf("group-readable key: %v, want ErrKeyFileMode", err)
	}
}

func decodeParts(t *testing.T, token string) (header, payload map[string]any) {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q has %d parts", token, len(parts))
	}
	for i, dst := range []*map[string]any{&header, &payload} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, dst); err != nil {
			t.Fatal(err)
		}
	}
	return header, payload
}

// TestSignerAndSealerConcurrently runs under -race: one Signer and one Sealer serve every request.
func TestSignerAndSealerConcurrently(t *testing.T) {
	t.Parallel()
	s, _ := newSigner(t, newKey(t), nil)
	sl := sealer(t, bytes.Repeat([]byte{1}, auth.KeySize))
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 20 {
				c := alice
				c.SessionID = fmt.Sprintf("s-%d-%d", i, j)
				tok, _, err := s.Sign(c)
				if err != nil {
					t.Error(err)
					return
				}
				if got, err := s.Verify(tok); err != nil || got.SessionID != c.SessionID {
					t.Errorf("Verify = %+v, %v", got, err)
				}
				if plain, err := sl.Open(sl.Seal([]byte(c.SessionID), nil), nil); err != nil || string(plain) != c.SessionID {
					t.Errorf("Open = %q, %v", plain, err)
				}
			}
		})
	}
	wg.Wait()
}

// After a rotation, a token of the previous key verifies while the grace lasts, and from its end
// is refused, even though the token itself has not expired; the JWKS drops the key too.
func TestKeyRotationGraceEnds(t *testing.T) {
	t.Parallel()
	oldKey, newKey := newKey(t), newKey(t)
	oldSigner, _ := newSigner(t, oldKey, func(c *auth.SignerConfig) { c.TTL = time.Hour })
	oldToken, _, err := oldSigner.Sign(alice)
	if err != nil {
		t.Fatal(err)
	}
	until := issued.Add(10 * time.Minute)
	rotated, c := newSigner(t, newKey, func(c *auth.SignerConfig) {
		c.PreviousKeys = []ed25519.PublicKey{oldKey.Public().(ed25519.PublicKey)}
		c.PreviousKeysUntil = until
	})
	c.Set(until.Add(-time.Second))
	if _, err := rotated.Verify(oldToken); err != nil {
		t.Errorf("within the grace, the previous key's token is refused: %v", err)
	}
	if set := rotated.JWKS(); len(set.Keys) != 2 {
		t.Errorf("within the grace the JWKS has %d keys, want the current and the previous", len(set.Keys))
	}
	c.Set(until)
	if _, err := rotated.Verify(oldToken); !errors.Is(err, auth.ErrAccessTokenUnknownKey) {
		t.Errorf("after the grace, the previous key's (unexpired) token: %v, want ErrAccessTokenUnknownKey", err)
	}
	if set := rotated.JWKS(); len(set.Keys) != 1 || set.Keys[0].Kid != rotated.KeyID() {
		t.Errorf("after the grace the JWKS = %+v, want the current key alone", set)
	}
	newToken, _, _ := rotated.Sign(alice)
	if _, err := rotated.Verify(newToken); err != nil {
		t.Errorf("the current key's token after the grace: %v", err)
	}
}

func TestLoadVerifyingKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	key := newKey(t)
	want := key.Public().(ed25519.PublicKey)
	der, _ := x509.MarshalPKIXPublicKey(want)
	pubFile := filepath.Join(dir, "old.pub.pem")
	if err := os.WriteFile(pubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	privDER, _ := x509.MarshalPKCS8PrivateKey(key)
	privFile := filepath.Join(dir, "old.pem")
	if err := os.WriteFile(privFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{pubFile, privFile} {
		got, err := auth.LoadVerifyingKey(f)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("LoadVerifyingKey(%s) = %x, %v; want the key", filepath.Base(f), got, err)
		}
	}
	if err := os.Chmod(privFile, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := auth.LoadVerifyingKey(privFile); !errors.Is(err, auth.ErrKeyFileMode) {
		t.Errorf("a private key readable by others: %v, want ErrKeyFileMode", err)
	}
}
