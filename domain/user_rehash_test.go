package domain_test

import (
	"errors"
	"testing"

	"github.com/idlog/idlog/domain"
)

// A rehash swaps the stored hash and nothing else: the sessions it was proven in stay open.
func TestRehashPassword(t *testing.T) {
	t.Parallel()
	u, _, err := domain.Register(domain.NewUser{ID: uid, Email: "alice@example.com", PasswordHash: hash1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := signIn("s1", at(1), 0)(u); err != nil {
		t.Fatal(err)
	}
	if _, err := u.RehashPassword(hash1); !errors.Is(err, domain.ErrUnchanged) {
		t.Errorf("rehash to the same hash: %v, want ErrUnchanged", err)
	}
	if _, err := u.RehashPassword("not a hash"); err == nil {
		t.Error("rehash to a malformed hash was accepted")
	}
	events, err := u.RehashPassword(hash2)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 1 || events[0] != (domain.PasswordRehashed{PasswordHash: hash2}) {
		t.Errorf("events %#v, want one PasswordRehashed", events)
	}
	if u.PasswordHash() != hash2 {
		t.Errorf("hash %q after the rehash, want the new one", u.PasswordHash())
	}
	if !u.HasSession("s1", at(2)) {
		t.Error("the rehash ended the session")
	}
}
