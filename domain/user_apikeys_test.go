package domain_test

import (
	"errors"
	"testing"

	"github.com/idlog/idlog/domain"
)

func withOTP(t *testing.T) *domain.User {
	t.Helper()
	u := register(t)
	if _, err := u.GenerateOTPSecret([]byte("sealed")); err != nil {
		t.Fatal(err)
	}
	if _, err := u.EnableOTP(100); err != nil {
		t.Fatal(err)
	}
	return u
}

func TestAPIKeyRules(t *testing.T) {
	t.Parallel()
	plain := register(t)
	if _, err := plain.CreateAPIKey(1, "k1", "HS256", nil, []byte("s")); !errors.Is(err, domain.ErrOTPNotEnabled) {
		t.Fatalf("without 2FA: %v, want ErrOTPNotEnabled", err)
	}

	u := withOTP(t)
	for name, c := range map[string]struct {
		kid, alg string
		scopes   []string
		step     int64
		want     error
	}{
		"replayed code":   {"k1", "HS256", nil, 100, domain.ErrOTPReplayed},
		"bad kid":         {"k 1", "HS256", nil, 101, domain.ErrAPIKeyInvalid},
		"long kid":        {string(make([]byte, 65)), "HS256", nil, 101, domain.ErrAPIKeyInvalid},
		"bad algorithm":   {"k1", "RS256", nil, 101, domain.ErrAPIKeyInvalid},
		"bad scope":       {"k1", "HS256", []string{"a b"}, 101, domain.ErrAPIKeyInvalid},
		"too many scopes": {"k1", "HS256", make21(), 101, domain.ErrAPIKeyInvalid},
	} {
		if ev, err := u.CreateAPIKey(c.step, c.kid, c.alg, c.scopes, []byte("s")); !errors.Is(err, c.want) || ev != nil {
			t.Errorf("%s: %v, %v; want %v and no event", name, types(ev), err, c.want)
		}
	}
	ev, err := u.CreateAPIKey(101, "k1", "HS256", []string{" Read ", "read", "trade"}, []byte("s"))
	if err != nil || len(ev) != 2 || ev[0].EventType() != "OTPVerified" {
		t.Fatalf("create: %v, %v", types(ev), err)
	}
	if k, _ := u.APIKey("k1"); k.State != domain.APIKeyActive || len(k.Scopes) != 2 || k.Scopes[0] != "read" {
		t.Errorf("k1 = %+v, want active with scopes [read trade]", k)
	}
	if _, err := u.CreateAPIKey(102, "k1", "HS256", nil, []byte("s")); !errors.Is(err, domain.ErrAPIKeyExists) {
		t.Errorf("same kid again: %v", err)
	}
	if _, err := u.ChangeAPIKey(102, "nope", nil, nil); !errors.Is(err, domain.ErrAPIKeyNotFound) {
		t.Errorf("change unknown: %v", err)
	}
	bad := domain.APIKeyState("paused")
	if _, err := u.ChangeAPIKey(102, "k1", nil, &bad); !errors.Is(err, domain.ErrAPIKeyInvalid) {
		t.Errorf("bad state: %v", err)
	}
	if _, err := u.DeleteAPIKey(102, "k1"); err != nil {
		t.Fatal(err)
	}
	if _, ok := u.APIKey("k1"); ok {
		t.Error("k1 still there after delete")
	}
	for i := range domain.MaxAPIKeysPerUser {
		if _, err := u.CreateAPIKey(int64(103+i), "k"+string(rune('a'+i%26))+string(rune('a'+i/26)), "HS256", nil, []byte("s")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := u.CreateAPIKey(1000, "one-more", "HS256", nil, []byte("s")); !errors.Is(err, domain.ErrAPIKeyLimit) {
		t.Errorf("past the limit: %v", err)
	}
	if _, err := u.ChangeState(domain.StateBanned, "", at(1)); err != nil {
		t.Fatal(err)
	}
	if _, err := u.DeleteAPIKey(1001, "kaa"); err == nil {
		t.Error("a banned user deleted a key")
	}
}

func make21() []string {
	var s []string
	for i := range 21 {
		s = append(s, "s"+string(rune('a'+i)))
	}
	return s
}
