package domain_test

import (
	"errors"
	"testing"
	"time"

	"github.com/idlog/idlog/domain"
)

func TestFailSecretCheck(t *testing.T) {
	t.Parallel()
	u, _, err := domain.Register(domain.NewUser{ID: "ID00000000C1", Email: "carol@example.com", PasswordHash: hash1})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	events, err := u.FailSecretCheck(domain.SecretOTP, "DisableOTP", at)
	if err != nil {
		t.Fatal(err)
	}
	if want := (domain.SecretCheckFailed{Secret: domain.SecretOTP, Action: "DisableOTP", At: at}); len(events) != 1 || events[0] != want {
		t.Fatalf("events %#v, want %#v", events, want)
	}
	for _, bad := range []struct {
		secret domain.Secret
		action string
		at     time.Time
	}{{"pin", "DisableOTP", at}, {domain.SecretPassword, "", at}, {domain.SecretPassword, "ChangePassword", time.Time{}}} {
		if _, err := u.FailSecretCheck(bad.secret, bad.action, bad.at); !errors.Is(err, domain.ErrInvalidArgument) {
			t.Errorf("FailSecretCheck(%q, %q, %v) = %v, want ErrInvalidArgument", bad.secret, bad.action, bad.at, err)
		}
	}
}
