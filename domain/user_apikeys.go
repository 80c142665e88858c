package domain

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// A user's API keys (Barong's APIKey): a key id (kid), an HMAC algorithm, scopes and a state. The
// secret is drawn by the caller and reaches the domain only sealed (auth.Sealer, with the user id
// and kid as additional data): events and snapshots carry ciphertext, never the secret. Creating,
// changing and deleting a key each spend a TOTP code (OTPVerified before the key's event), so
// two-factor authentication must be on, as in Barong.

// APIKeyState is a key's state: only an active key authenticates.
type APIKeyState string

// The states of an API key.
const (
	APIKeyActive   APIKeyState = "active"
	APIKeyDisabled APIKeyState = "disabled"
)

// ParseAPIKeyState returns the state of that name, or ErrAPIKeyInvalid.
func ParseAPIKeyState(s string) (APIKeyState, error) {
	switch st := APIKeyState(s); st {
	case APIKeyActive, APIKeyDisabled:
		return st, nil
	}
	return "", fmt.Errorf("%w: state %q", ErrAPIKeyInvalid, s)
}

// APIKeyAlgorithms are the HMAC algorithms a key may use, Barong's names.
var APIKeyAlgorithms = []string{"HS256", "HS384", "HS512"}

// Limits of API keys.
const (
	MaxAPIKeysPerUser = 50
	MaxAPIKeyScopes   = 20
	maxKIDBytes       = 64
	maxScopeBytes     = 64
)

// Errors of API keys.
var (
	// ErrAPIKeyInvalid: a kid, algorithm, scope or state is malformed.
	ErrAPIKeyInvalid = errors.New("domain: invalid api key field")
	// ErrAPIKeyNotFound: the user has no key of that kid.
	ErrAPIKeyNotFound = errors.New("domain: no such api key")
	// ErrAPIKeyExists: the user already has a key of that kid.
	ErrAPIKeyExists = errors.New("domain: api key exists")
	// ErrAPIKeyLimit: the user has MaxAPIKeysPerUser keys already.
	ErrAPIKeyLimit = errors.New("domain: too many api keys")
)

// APIKeyCreated: the user made a key; Ciphertext is its secret sealed by the caller.
type APIKeyCreated struct {
	KID        string   `json:"kid"`
	Algorithm  string   `json:"algorithm"`
	Scopes     []string `json:"scopes,omitempty"`
	Ciphertext []byte   `json:"ciphertext"`
}

// APIKeyChanged: the key's scopes and state are now these (the whole new values).
type APIKeyChanged struct {
	KID    string      `json:"kid"`
	Scopes []string    `json:"scopes,omitempty"`
	State  APIKeyState `json:"state"`
}

// APIKeyDeleted: the key is gone; its kid may be used again.
type APIKeyDeleted struct {
	KID string `json:"kid"`
}

// EventType implementations.
func (APIKeyCreated) EventType() string { return "APIKeyCreated" }
func (APIKeyChanged) EventType() string { return "APIKeyChanged" }
func (APIKeyDeleted) EventType() string { return "APIKeyDeleted" }

// APIKeyEvents are the API key events, for RegisterEvents.
func apiKeyEvents() []Event { return []Event{APIKeyCreated{}, APIKeyChanged{}, APIKeyDeleted{}} }

type apiKey struct {
	algorithm  string
	scopes     []string
	state      APIKeyState
	ciphertext []byte
}

// APIKey is a key as the user holds it, for the command layer that checks signatures.
type APIKey struct {
	KID        string
	Algorithm  string
	Scopes     []string
	State      APIKeyState
	Ciphertext []byte // the sealed secret
}

// APIKey returns the user's key of that kid.
func (u *User) APIKey(kid string) (APIKey, bool) {
	k, ok := u.apiKeys[kid]
	if !ok {
		return APIKey{}, false
	}
	return APIKey{KID: kid, Algorithm: k.algorithm, Scopes: slices.Clone(k.scopes), State: k.state, Ciphertext: bytes.Clone(k.ciphertext)}, true
}

// CheckKID reports whether kid is a well-formed key id: 1 to 64 of [A-Za-z0-9_.-].
func CheckKID(kid string) error {
	if kid == "" || len(kid) > maxKIDBytes {
		return fmt.Errorf("%w: kid of %d bytes", ErrAPIKeyInvalid, len(kid))
	}
	for _, c := range kid {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return fmt.Errorf("%w: kid %q", ErrAPIKeyInvalid, kid)
		}
	}
	return nil
}

// NormalizeScopes trims, lower-cases, drops empty and repeated scopes, and checks each: 1 to 64 of
// [a-z0-9_:.-], at most MaxAPIKeyScopes.
func NormalizeScopes(in []string) ([]string, error) {
	var out []string
	for _, s := range in {
		s = strings.ToLower(strings.TrimSpace(s))
		if s == "" || slices.Contains(out, s) {
			continue
		}
		if len(s) > maxScopeBytes {
			return nil, fmt.Errorf("%w: scope of %d bytes", ErrAPIKeyInvalid, len(s))
		}
		for _, c := range s {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == ':' || c == '.') {
				return nil, fmt.Errorf("%w: scope %q", ErrAPIKeyInvalid, s)
			}
		}
		out = append(out, s)
	}
	if len(out) > MaxAPIKeyScopes {
		return nil, fmt.Errorf("%w: %d scopes, at most %d", ErrAPIKeyInvalid, len(out), MaxAPIKeyScopes)
	}
	return out, nil
}

// requireOTPStep checks that the user may act on keys with a TOTP code of time step step.
func (u *User) requireOTPStep(step int64) error {
	if err := u.requireActive(); err != nil {
		return err
	}
	if !u.otpEnabled {
		return ErrOTPNotEnabled
	}
	return u.checkOTPStep(step)
}

// CreateAPIKey adds a key, spending the TOTP code of time step step. ciphertext is the secret
// sealed by the caller.
func (u *User) CreateAPIKey(step int64, kid, algorithm string, scopes []string, ciphertext []byte) ([]Event, error) {
	if err := u.requireOTPStep(step); err != nil {
		return nil, err
	}
	if err := CheckKID(kid); err != nil {
		return nil, err
	}
	if !slices.Contains(APIKeyAlgorithms, algorithm) {
		return nil, fmt.Errorf("%w: algorithm %q", ErrAPIKeyInvalid, algorithm)
	}
	scopes, err := NormalizeScopes(scopes)
	if err != nil {
		return nil, err
	}
	if len(ciphertext) == 0 {
		return nil, fmt.Errorf("%w: empty sealed secret", ErrInvalidArgument)
	}
	if _, ok := u.apiKeys[kid]; ok {
		return nil, fmt.Errorf("%w: %s", ErrAPIKeyExists, kid)
	}
	if len(u.apiKeys) >= MaxAPIKeysPerUser {
		return nil, ErrAPIKeyLimit
	}
	return u.record(OTPVerified{Step: step}, APIKeyCreated{KID: kid, Algorithm: algorithm, Scopes: scopes, Ciphertext: bytes.Clone(ciphertext)}), nil
}

// ChangeAPIKey sets a key's scopes and state (nil: kept), spending the TOTP code of time step step.
func (u *User) ChangeAPIKey(step int64, kid string, scopes *[]string, state *APIKeyState) ([]Event, error) {
	if err := u.requireOTPStep(step); err != nil {
		return nil, err
	}
	k, ok := u.apiKeys[kid]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrAPIKeyNotFound, kid)
	}
	e := APIKeyChanged{KID: kid, Scopes: k.scopes, State: k.state}
	if scopes != nil {
		s, err := NormalizeScopes(*scopes)
		if err != nil {
			return nil, err
		}
		e.Scopes = s
	}
	if state != nil {
		if _, err := ParseAPIKeyState(string(*state)); err != nil {
			return nil, err
		}
		e.State = *state
	}
	return u.record(OTPVerified{Step: step}, e), nil
}

// DeleteAPIKey removes a key, spending the TOTP code of time step step.
func (u *User) DeleteAPIKey(step int64, kid string) ([]Event, error) {
	if err := u.requireOTPStep(step); err != nil {
		return nil, err
	}
	if _, ok := u.apiKeys[kid]; !ok {
		return nil, fmt.Errorf("%w: %s", ErrAPIKeyNotFound, kid)
	}
	return u.record(OTPVerified{Step: step}, APIKeyDeleted{KID: kid}), nil
}

func (u *User) applyAPIKey(e Event) {
	if u.apiKeys == nil {
		u.apiKeys = map[string]apiKey{}
	}
	switch e := e.(type) {
	case APIKeyCreated:
		u.apiKeys[e.KID] = apiKey{algorithm: e.Algorithm, scopes: e.Scopes, state: APIKeyActive, ciphertext: e.Ciphertext}
	case APIKeyChanged:
		k := u.apiKeys[e.KID]
		k.scopes, k.state = e.Scopes, e.State
		u.apiKeys[e.KID] = k
	case APIKeyDeleted:
		delete(u.apiKeys, e.KID)
	}
}

type snapshotAPIKey struct {
	KID        string      `json:"kid"`
	Algorithm  string      `json:"algorithm"`
	Scopes     []string    `json:"scopes,omitempty"`
	State      APIKeyState `json:"state"`
	Ciphertext []byte      `json:"ciphertext"`
}

func (u *User) apiKeysSnapshot() []snapshotAPIKey {
	var out []snapshotAPIKey
	for _, kid := range slices.Sorted(maps.Keys(u.apiKeys)) {
		k := u.apiKeys[kid]
		out = append(out, snapshotAPIKey{KID: kid, Algorithm: k.algorithm, Scopes: k.scopes, State: k.state, Ciphertext: k.ciphertext})
	}
	return out
}

func restoreAPIKeys(s []snapshotAPIKey) map[string]apiKey {
	if len(s) == 0 {
		return nil
	}
	m := make(map[string]apiKey, len(s))
	for _, k := range s {
		m[k.KID] = apiKey{algorithm: k.Algorithm, scopes: k.Scopes, state: k.State, ciphertext: k.Ciphertext}
	}
	return m
}
