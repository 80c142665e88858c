package domain_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/idlog/idlog/domain"
)

func ptr(s string) *string { return &s }

func TestProfileFields(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		field string
		patch domain.ProfilePatch
	}{
		{"country", domain.ProfilePatch{Country: ptr("UK")}}, // exceptionally reserved, not assigned
		{"country", domain.ProfilePatch{Country: ptr("YU")}}, // withdrawn
		{"country", domain.ProfilePatch{Country: ptr("F")}},
		{"dob", domain.ProfilePatch{DOB: ptr("1990-02-30")}},
		{"dob", domain.ProfilePatch{DOB: ptr("1850-01-01")}},
		{"vat_id", domain.ProfilePatch{VATID: ptr("1234567")}},
		{"locale", domain.ProfilePatch{Locale: ptr("e")}},
		{"postcode", domain.ProfilePatch{Postcode: ptr("75<001")}},
		{"first_name", domain.ProfilePatch{FirstName: ptr("Al\x00ice")}},
		{"metadata", domain.ProfilePatch{Metadata: &[]json.RawMessage{json.RawMessage(`"x"`)}[0]}},
	} {
		u := register(t)
		_, err := u.CreateProfile(c.patch, false, at(1))
		var fe *domain.ProfileFieldError
		if !errors.As(err, &fe) || fe.Field != c.field || !errors.Is(err, domain.ErrProfileInvalid) {
			t.Errorf("%+v: error %v, want a %s field error", c.patch, err, c.field)
		}
		if _, _, ok := u.Profile(); ok {
			t.Errorf("%+v: a refused profile was recorded", c.patch)
		}
	}
}

func TestProfileLifecycle(t *testing.T) {
	t.Parallel()
	u := register(t)
	if _, err := u.UpdateProfile(domain.ProfilePatch{City: ptr("Lyon")}, false, at(1)); !errors.Is(err, domain.ErrProfileNotFound) {
		t.Fatalf("update without a profile: %v", err)
	}
	if _, err := u.CreateProfile(domain.ProfilePatch{FirstName: ptr("Alice"), Country: ptr("fr")}, false, at(1)); err != nil {
		t.Fatal(err)
	}
	if _, err := u.CreateProfile(domain.ProfilePatch{}, false, at(1)); !errors.Is(err, domain.ErrProfileExists) {
		t.Fatalf("second profile: %v", err)
	}
	if _, err := u.UpdateProfile(domain.ProfilePatch{FirstName: ptr("Alice")}, false, at(1)); !errors.Is(err, domain.ErrUnchanged) {
		t.Fatalf("same profile: %v", err)
	}
	events, err := u.UpdateProfile(domain.ProfilePatch{City: ptr("Lyon")}, true, at(2))
	if err != nil || len(events) != 2 {
		t.Fatalf("update and submit: %v %v", events, err)
	}
	d, state, _ := u.Profile()
	if d.FirstName != "Alice" || d.Country != "FR" || d.City != "Lyon" || state != domain.ProfileSubmitted {
		t.Fatalf("profile %+v %s", d, state)
	}
	if _, err := u.UpdateProfile(domain.ProfilePatch{City: ptr("Nice")}, false, at(3)); !errors.Is(err, domain.ErrProfileNotEditable) {
		t.Fatalf("edit of a submitted profile: %v", err)
	}
	if _, err := u.ReviewProfile(domain.ProfilePatch{}, domain.ProfileRejected, at(3)); err != nil {
		t.Fatal(err)
	}
	if _, err := u.CreateProfile(domain.ProfilePatch{LastName: ptr("Martin")}, false, at(4)); err != nil {
		t.Fatalf("a new profile after rejection: %v", err)
	}
	if d, state, _ := u.Profile(); d.FirstName != "" || d.LastName != "Martin" || state != domain.ProfileDrafted {
		t.Fatalf("new profile %+v %s", d, state)
	}
	// The state survives a snapshot.
	snap, err := u.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	back, err := domain.RestoreUser(snap, 10)
	if err != nil {
		t.Fatal(err)
	}
	if d, state, _ := back.Profile(); d.LastName != "Martin" || state != domain.ProfileDrafted {
		t.Fatalf("restored profile %+v %s", d, state)
	}
}
