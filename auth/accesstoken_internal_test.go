package auth

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"testing"
	"time"
)

// TestVerifiedTokensAreRemembered: a token verified once is answered from memory (a planted entry
// shows it is used), but only within the bounds a full verification would accept it in: past its
// expiry, with the clock set back before it was verified, or once its key is retired, the token
// is verified again.
func TestVerifiedTokensAreRemembered(t *testing.T) {
	t.Parallel()
	_, oldKey, _ := ed25519.GenerateKey(rand.Reader)
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	old, err := NewSigner(oldKey, SignerConfig{Issuer: "idlog", Audience: "idlog", Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	until := now.Add(10 * time.Minute)
	s, err := NewSigner(key, SignerConfig{Issuer: "idlog", Audience: "idlog", Now: clock,
		PreviousKeys: []ed25519.PublicKey{oldKey.Public().(ed25519.PublicKey)}, PreviousKeysUntil: until})
	if err != nil {
		t.Fatal(err)
	}
	token, want, err := s.Sign(AccessClaims{UserID: "ID00000000A1", SessionID: "sess-1", Role: "member"})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.Verify(token); err != nil || got != want {
		t.Fatalf("first Verify = %+v, %v", got, err)
	}
	// Plant another answer for the token: Verify gives it back, so it did not verify again.
	k := sha256.Sum256([]byte(token))
	planted, _ := s.verified.get(k)
	planted.claims.Role = "planted"
	s.verified.put(k, planted)
	now = now.Add(time.Minute)
	if got, err := s.Verify(token); err != nil || got.Role != "planted" {
		t.Fatalf("second Verify = %+v, %v; want the remembered answer", got, err)
	}
	now = now.Add(-75 * time.Second) // set back before the token was verified (within the leeway): verified again
	if got, err := s.Verify(token); err != nil || got.Role != "member" {
		t.Errorf("with the clock set back: %+v, %v; want a full verification", got, err)
	}
	now = want.ExpiresAt.Add(DefaultLeeway + time.Second)
	if _, err := s.Verify(token); !errors.Is(err, ErrAccessTokenExpired) {
		t.Errorf("past its expiry, a remembered token: %v, want ErrAccessTokenExpired", err)
	}

	// A token of the previous key, remembered within the grace, is refused once it ends.
	now = until.Add(-5 * time.Minute)
	oldToken, _, err := old.Sign(AccessClaims{UserID: "ID00000000A1", SessionID: "sess-2"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Verify(oldToken); err != nil {
		t.Fatalf("the previous key's token within the grace: %v", err)
	}
	now = until
	if _, err := s.Verify(oldToken); !errors.Is(err, ErrAccessTokenUnknownKey) {
		t.Errorf("after the grace, a remembered token of the previous key: %v, want ErrAccessTokenUnknownKey", err)
	}
	// A forged token is not taken for a remembered one: one changed character of the signature.
	now = want.IssuedAt.Add(time.Minute)
	b := []byte(token)
	b[len(b)-10] ^= 'A' ^ 'B' // 'A' <-> 'B', or another base64url character
	if _, err := s.Verify(string(b)); err == nil {
		t.Error("a forged token verified")
	}
}
