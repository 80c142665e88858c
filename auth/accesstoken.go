package auth

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Errors of access tokens. Verify returns ErrAccessToken wrapped together with exactly one of the
// others, so the API can answer 401 on the first and log the second.
var (
	// ErrAccessToken: the token is not acceptable, for the reason wrapped with it.
	ErrAccessToken = errors.New("auth: invalid access token")

	ErrAccessTokenMalformed   = errors.New("auth: access token is malformed")
	ErrAccessTokenAlgorithm   = errors.New("auth: access token is not signed with EdDSA")
	ErrAccessTokenUnknownKey  = errors.New("auth: access token is signed with an unknown key")
	ErrAccessTokenSignature   = errors.New("auth: access token signature is invalid")
	ErrAccessTokenExpired     = errors.New("auth: access token expired")
	ErrAccessTokenNotYetValid = errors.New("auth: access token is not valid yet")
	ErrAccessTokenIssuer      = errors.New("auth: access token has another issuer")
	ErrAccessTokenAudience    = errors.New("auth: access token is for another audience")
	ErrAccessTokenClaims      = errors.New("auth: access token lacks a required claim")
)

// Defaults of SignerConfig.
const (
	DefaultAccessTokenTTL = 15 * time.Minute
	DefaultLeeway         = 30 * time.Second
)

// SignerConfig configures a Signer.
type SignerConfig struct {
	Issuer   string        // "iss" of every token; required
	Audience string        // "aud" of every token; required
	TTL      time.Duration // lifetime of a token; 0 means DefaultAccessTokenTTL
	Leeway   time.Duration // clock skew tolerated on exp and iat; 0 means DefaultLeeway
	// PreviousKeys are public keys of earlier signing keys: tokens they signed are still accepted
	// (and published in the JWKS) until they expire, so rotating the key signs nobody out.
	PreviousKeys []ed25519.PublicKey
	// PreviousKeysUntil ends that grace: from then on the previous keys verify nothing and leave
	// the JWKS, so a retired key, even leaked, cannot mint tokens for ever. Set it to the rotation
	// time plus the token TTL (and leeway). Zero keeps them as long as they are configured.
	PreviousKeysUntil time.Time
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// AccessClaims is what an access token says.
type AccessClaims struct {
	UserID    string // "sub"
	SessionID string // "sid": the session the token belongs to; ending it revokes the token
	Role      string
	Level     int
	Email     string
	IssuedAt  time.Time // set by Sign; UTC, seconds precision
	ExpiresAt time.Time // set by Sign; UTC, seconds precision
}

// Signer signs access tokens with an Ed25519 key and verifies them against that key and the
// previous ones. It is safe for concurrent use.
type Signer struct {
	key    ed25519.PrivateKey
	kid    string
	keys   map[string]ed25519.PublicKey // kid -> key, the current one included
	order  []string                     // kids, current first, for the JWKS
	cfg    SignerConfig
	parser *jwt.Parser
	// verified remembers tokens already verified, by their hash: a session presents its token on
	// every request, and checking the Ed25519 signature and decoding the claims again was 40% of
	// the CPU of GET /users/me.
	verified verifiedTokens
}

// verifiedTokenCache is how many verified tokens a Signer remembers.
const verifiedTokenCache = 10000

// verifiedTokens remembers tokens whose signature and claims were checked: what cannot change for
// a given token string. What can (the clock against its time bounds, the retirement of its key)
// is checked at every use; a token outside the bounds it was verified in is verified again, so a
// cached token answers exactly what a full verification would. Full, it forgets an arbitrary
// eighth of its tokens.
type verifiedTokens struct {
	mu sync.Mutex
	m  map[[sha256.Size]byte]verifiedToken
}

type verifiedToken struct {
	claims AccessClaims
	kid    string
	at     time.Time // verified then: with the clock set back before it, verify again
}

func (v *verifiedTokens) get(key [sha256.Size]byte) (verifiedToken, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	t, ok := v.m[key]
	return t, ok
}

func (v *verifiedTokens) put(key [sha256.Size]byte, t verifiedToken) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.m == nil {
		v.m = map[[sha256.Size]byte]verifiedToken{}
	}
	if len(v.m) >= verifiedTokenCache {
		n := verifiedTokenCache / 8
		for k := range v.m {
			delete(v.m, k)
			if n--; n == 0 {
				break
			}
		}
	}
	v.m[key] = t
}

// NewSigner returns a Signer for key (LoadOrCreateSigningKey) and cfg.
func NewSigner(key ed25519.PrivateKey, cfg SignerConfig) (*Signer, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("auth: Ed25519 private key of %d bytes, want %d", len(key), ed25519.PrivateKeySize)
	}
	switch {
	case cfg.Issuer == "":
		return nil, errors.New("auth: signer issuer is empty")
	case cfg.Audience == "":
		return nil, errors.New("auth: signer audience is empty")
	case cfg.TTL < 0:
		return nil, fmt.Errorf("auth: access token TTL (%v) cannot be negative", cfg.TTL)
	case cfg.Leeway < 0:
		return nil, fmt.Errorf("auth: leeway (%v) cannot be negative", cfg.Leeway)
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultAccessTokenTTL
	}
	if cfg.Leeway == 0 {
		cfg.Leeway = DefaultLeeway
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Signer{key: key, cfg: cfg, keys: map[string]ed25519.PublicKey{}}
	pub := key.Public().(ed25519.PublicKey)
	s.kid = KeyID(pub)
	for _, k := range append([]ed25519.PublicKey{pub}, cfg.PreviousKeys...) {
		if len(k) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("auth: Ed25519 public key of %d bytes, want %d", len(k), ed25519.PublicKeySize)
		}
		kid := KeyID(k)
		if _, dup := s.keys[kid]; !dup {
			s.keys[kid] = k
			s.order = append(s.order, kid)
		}
	}
	s.parser = jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}),
		jwt.WithIssuer(cfg.Issuer),
		jwt.WithAudience(cfg.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithTimeFunc(cfg.Now),
		jwt.WithStrictDecoding(),
	)
	return s, nil
}

// KeyID is the "kid" of a public key: its RFC 7638 JWK thumbprint, so the same key always has
// the same id on every server.
func KeyID(pub ed25519.PublicKey) string {
	// RFC 7638: the required members, sorted, without spaces.
	canonical := `{"crv":"Ed25519","kty":"OKP","x":"` + base64.RawURLEncoding.EncodeToString(pub) + `"}`
	sum := sha256.Sum256([]byte(canonical))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// KeyID is the kid of the current signing key.
func (s *Signer) KeyID() string { return s.kid }

// TTL is the lifetime of the tokens Sign makes.
func (s *Signer) TTL() time.Duration { return s.cfg.TTL }

type tokenClaims struct {
	SessionID string `json:"sid"`
	Role      string `json:"role,omitempty"`
	Level     int    `json:"level"`
	Email     string `json:"email,omitempty"`
	jwt.RegisteredClaims
}

// Sign makes a token for c (UserID and SessionID required; IssuedAt and ExpiresAt are ignored),
// issued now and expiring after the TTL. It returns the token and the claims as signed.
func (s *Signer) Sign(c AccessClaims) (string, AccessClaims, error) {
	if c.UserID == "" || c.SessionID == "" {
		return "", AccessClaims{}, fmt.Errorf("%w: user id and session id are required", ErrAccessTokenClaims)
	}
	// Seconds precision: that is what the token holds (NumericDate).
	c.IssuedAt = s.cfg.Now().UTC().Truncate(time.Second)
	c.ExpiresAt = c.IssuedAt.Add(s.cfg.TTL)
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, tokenClaims{
		SessionID: c.SessionID, Role: c.Role, Level: c.Level, Email: c.Email,
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   c.UserID,
			Issuer:    s.cfg.Issuer,
			Audience:  jwt.ClaimStrings{s.cfg.Audience},
			IssuedAt:  jwt.NewNumericDate(c.IssuedAt),
			ExpiresAt: jwt.NewNumericDate(c.ExpiresAt),
		},
	})
	tok.Header["kid"] = s.kid
	signed, err := tok.SignedString(s.key)
	if err != nil {
		return "", AccessClaims{}, fmt.Errorf("auth: sign access token: %w", err)
	}
	return signed, c, nil
}

// Verify checks a token: EdDSA only, signed by a known key named by its kid, this issuer, this
// audience, not expired (with the leeway), and carrying sub and sid. Whether its session is still
// open is the caller's check. Errors wrap ErrAccessToken and one specific ErrAccessToken* error.
// A token verified before is answered from memory while the clock is within its lifetime and its
// key still verifies: the same answer, without checking its signature again.
func (s *Signer) Verify(token string) (AccessClaims, error) {
	key := sha256.Sum256([]byte(token))
	now := s.cfg.Now()
	if v, ok := s.verified.get(key); ok && !now.Before(v.at) && now.Before(v.claims.ExpiresAt) && s.inUse(v.kid) {
		return v.claims, nil
	}
	var kid string
	claims, err := s.verify(token, &kid)
	if err == nil {
		s.verified.put(key, verifiedToken{claims: claims, kid: kid, at: now})
	}
	return claims, err
}

// verify checks token in full, and sets *kid to the key id it names.
func (s *Signer) verify(token string, kidOut *string) (AccessClaims, error) {
	var tc tokenClaims
	tok, err := s.parser.ParseWithClaims(token, &tc, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		k, ok := s.keys[kid]
		if ok && !s.inUse(kid) {
			return nil, fmt.Errorf("%w: kid %q was retired at %s", ErrAccessTokenUnknownKey, kid, s.cfg.PreviousKeysUntil.UTC().Format(time.RFC3339))
		}
		if !ok {
			return nil, fmt.Errorf("%w: kid %q", ErrAccessTokenUnknownKey, kid)
		}
		*kidOut = kid
		return k, nil
	})
	if err != nil {
		return AccessClaims{}, fmt.Errorf("%w: %w (%v)", ErrAccessToken, classify(tok, err), err)
	}
	if tc.Subject == "" || tc.SessionID == "" {
		return AccessClaims{}, fmt.Errorf("%w: %w: sub or sid is empty", ErrAccessToken, ErrAccessTokenClaims)
	}
	if tc.IssuedAt == nil {
		return AccessClaims{}, fmt.Errorf("%w: %w: iat is missing", ErrAccessToken, ErrAccessTokenClaims)
	}
	return AccessClaims{
		UserID: tc.Subject, SessionID: tc.SessionID, Role: tc.Role, Level: tc.Level, Email: tc.Email,
		IssuedAt: tc.IssuedAt.UTC(), ExpiresAt: tc.ExpiresAt.UTC(),
	}, nil
}

// inUse reports whether the key kid verifies tokens now: the current key always, a previous one
// until PreviousKeysUntil.
func (s *Signer) inUse(kid string) bool {
	return kid == s.kid || s.cfg.PreviousKeysUntil.IsZero() || s.cfg.Now().Before(s.cfg.PreviousKeysUntil)
}

// classify maps a jwt error to one of this package's.
func classify(tok *jwt.Token, err error) error {
	if tok != nil {
		// A token that names another algorithm fails one way or another inside jwt (method not
		// allowed, or unknown); say why plainly.
		if alg, ok := tok.Header["alg"].(string); ok && alg != jwt.SigningMethodEdDSA.Alg() {
			return ErrAccessTokenAlgorithm
		}
	}
	for _, m := range []struct{ jwt, ours error }{
		{ErrAccessTokenUnknownKey, ErrAccessTokenUnknownKey},
		{jwt.ErrTokenMalformed, ErrAccessTokenMalformed},
		{jwt.ErrTokenSignatureInvalid, ErrAccessTokenSignature},
		{jwt.ErrTokenExpired, ErrAccessTokenExpired},
		{jwt.ErrTokenUsedBeforeIssued, ErrAccessTokenNotYetValid},
		{jwt.ErrTokenNotValidYet, ErrAccessTokenNotYetValid},
		{jwt.ErrTokenInvalidIssuer, ErrAccessTokenIssuer},
		{jwt.ErrTokenInvalidAudience, ErrAccessTokenAudience},
		{jwt.ErrTokenRequiredClaimMissing, ErrAccessTokenClaims},
	} {
		if errors.Is(err, m.jwt) {
			return m.ours
		}
	}
	return ErrAccessTokenMalformed
}

// JWK is one public key of a JSON Web Key Set (RFC 7517, RFC 8037 for OKP keys).
type JWK struct {
	Kty string `json:"kty"` // "OKP"
	Crv string `json:"crv"` // "Ed25519"
	X   string `json:"x"`   // the public key, unpadded base64url
	Kid string `json:"kid"`
	Use string `json:"use"` // "sig"
	Alg string `json:"alg"` // "EdDSA"
}

// JWKS is the document served at /.well-known/jwks.json.
type JWKS struct {
	Keys []JWK `json:"keys"`
}

// JWKS returns the public keys that verify tokens: the current one first, then the previous ones
// still in their grace.
func (s *Signer) JWKS() JWKS {
	set := JWKS{Keys: make([]JWK, 0, len(s.order))}
	for _, kid := range s.order {
		if !s.inUse(kid) {
			continue
		}
		set.Keys = append(set.Keys, JWK{
			Kty: "OKP", Crv: "Ed25519", X: base64.RawURLEncoding.EncodeToString(s.keys[kid]),
			Kid: kid, Use: "sig", Alg: jwt.SigningMethodEdDSA.Alg(),
		})
	}
	return set
}

// LoadOrCreateSigningKey returns the Ed25519 key stored at path (PEM, PKCS#8 "PRIVATE KEY"), or, if
// there is no file, makes one and stores it there with mode 0600 (creating the directory with
// 0700). Concurrent first calls agree on one key. A key file that group or others may read is
// refused (ErrKeyFileMode).
func LoadOrCreateSigningKey(path string) (ed25519.PrivateKey, error) {
	b, err := loadOrCreateFile(path, func() []byte {
		_, key, _ := ed25519.GenerateKey(rand.Reader) // crypto/rand never fails
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			panic("auth: marshal a new Ed25519 key: " + err.Error()) // cannot happen for Ed25519
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	})
	if err != nil {
		return nil, err
	}
	return ParseSigningKey(b)
}

// LoadVerifyingKey returns the public key in the PEM file at path: a "PUBLIC KEY" (PKIX), or the
// "PRIVATE KEY" (PKCS#8) of an earlier signing key, whose file must then be private to its owner
// (ErrKeyFileMode otherwise). It reads the previous keys of a rotation.
func LoadVerifyingKey(path string) (ed25519.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("auth: read key file: %w", err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("%w: %s holds no PEM block", ErrKeyInvalid, path)
	}
	switch block.Type {
	case "PUBLIC KEY":
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrKeyInvalid, path, err)
		}
		pub, ok := k.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("%w: %s: %T is not an Ed25519 key", ErrKeyInvalid, path, k)
		}
		return pub, nil
	case "PRIVATE KEY":
		if b, err = readKeyFile(path); err != nil {
			return nil, err
		}
		key, err := ParseSigningKey(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return key.Public().(ed25519.PublicKey), nil
	}
	return nil, fmt.Errorf("%w: %s holds a PEM %q block, want PUBLIC KEY or PRIVATE KEY", ErrKeyInvalid, path, block.Type)
}

// ParseSigningKey decodes an Ed25519 private key from PEM (PKCS#8 "PRIVATE KEY").
func ParseSigningKey(pemBytes []byte) (ed25519.PrivateKey, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%w: no PEM \"PRIVATE KEY\" block", ErrKeyInvalid)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKeyInvalid, err)
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%w: %T is not an Ed25519 key", ErrKeyInvalid, k)
	}
	return key, nil
}
