package domain_test

import (
	"errors"
	"testing"
	"time"

	"github.com/idlog/idlog/domain"
)

// An imported user keeps its creation time, verified email, labels, profile and state, and each
// goes through the rules of the command that would record it here.
func TestImportUser(t *testing.T) {
	t.Parallel()
	created := time.Date(2019, 5, 1, 12, 0, 0, 0, time.UTC)
	first, country := "Ada", "GB"
	u, events, err := domain.ImportUser(domain.ImportedUser{
		NewUser:   domain.NewUser{ID: uid, Email: "Ada@Example.com", Username: "ada", PasswordHash: hash1, Role: domain.RoleMember, SignupBonus: 100},
		CreatedAt: created, State: domain.StateBanned, EmailVerified: true,
		Labels:  []domain.Label{{Key: "tier", Value: "gold", Scope: domain.ScopePublic}},
		Profile: &domain.ProfilePatch{FirstName: &first, Country: &country},
	}, at(1))
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, e := range events {
		types = append(types, e.EventType())
	}
	reg, ok := events[0].(domain.UserRegistered)
	if !ok || !reg.CreatedAt.Equal(created) || reg.Email != "ada@example.com" {
		t.Fatalf("first event %#v, want UserRegistered created at %s", events[0], created)
	}
	for _, want := range []string{"EmailVerified", "LabelAdded", "ProfileCreated", "UserStateChanged"} {
		found := false
		for _, typ := range types {
			found = found || typ == want
		}
		if !found {
			t.Errorf("events %v, want %s", types, want)
		}
	}
	for _, typ := range types {
		if typ == "WalletCredited" {
			t.Errorf("events %v: an imported user got the sign-up bonus", types)
		}
	}
	if !u.EmailVerified() || u.State() != domain.StateBanned || u.Level() < 1 {
		t.Errorf("verified %v, state %s, level %d", u.EmailVerified(), u.State(), u.Level())
	}
	if r, err := domain.RehydrateUser(events); err != nil || r.State() != domain.StateBanned {
		t.Errorf("rehydrated: %v, %v", r, err)
	}

	for name, n := range map[string]domain.ImportedUser{
		"no creation time": {NewUser: domain.NewUser{ID: uid, Email: "a@example.com", PasswordHash: hash1}},
		"future":           {NewUser: domain.NewUser{ID: uid, Email: "a@example.com", PasswordHash: hash1}, CreatedAt: at(2)},
		"plain password":   {NewUser: domain.NewUser{ID: uid, Email: "a@example.com", PasswordHash: "hunter2"}, CreatedAt: created},
		"bad email":        {NewUser: domain.NewUser{ID: uid, Email: "nope", PasswordHash: hash1}, CreatedAt: created},
	} {
		if _, _, err := domain.ImportUser(n, at(1)); err == nil {
			t.Errorf("%s: imported", name)
		} else if !errors.Is(err, domain.ErrInvalidArgument) && name != "bad email" {
			t.Errorf("%s: %v, want ErrInvalidArgument", name, err)
		}
	}
}
