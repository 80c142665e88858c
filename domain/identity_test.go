package domain_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/idlog/idlog/domain"
)

func TestNormalizeEmail(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", 64) + "@" + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 63) + ".com"
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"alice@example.com", "alice@example.com", true},
		{"  Alice.Smith+Tag@Example.COM \n", "alice.smith+tag@example.com", true},
		{"o'brien@mail.example.co.uk", "o'brien@mail.example.co.uk", true},
		{"x@xn--bcher-kva.example", "x@xn--bcher-kva.example", true},
		{"a_b-c@sub-domain.io", "a_b-c@sub-domain.io", true},
		{"", "", false},
		{"   ", "", false},
		{"alice", "", false},
		{"alice@", "", false},
		{"@example.com", "", false},
		{"alice@@example.com", "", false},
		{"a@b@example.com", "", false},
		{"alice@localhost", "", false},
		{"alice@example..com", "", false},
		{"alice@-example.com", "", false},
		{"alice@example-.com", "", false},
		{"alice@1.2.3.4", "", false},
		{"alice@[1.2.3.4]", "", false},
		{".alice@example.com", "", false},
		{"alice.@example.com", "", false},
		{"al..ice@example.com", "", false},
		{"al ice@example.com", "", false},
		{`"alice"@example.com`, "", false},
		{"Alice <alice@example.com>", "", false},
		{"alicé@example.com", "", false},
		{"alice@exämple.com", "", false},
		{"alice@example_x.com", "", false},
		{strings.Repeat("a", 65) + "@example.com", "", false},
		{"a@" + strings.Repeat("b", 64) + ".com", "", false},
		{long, "", false}, // over 254 characters in all
	} {
		got, err := domain.NormalizeEmail(tc.in)
		if tc.ok {
			if err != nil || got != tc.want {
				t.Errorf("NormalizeEmail(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
			continue
		}
		if !errors.Is(err, domain.ErrEmailInvalid) {
			t.Errorf("NormalizeEmail(%q) = %q, %v; want ErrEmailInvalid", tc.in, got, err)
		}
	}
}

func TestNormalizeUsername(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"alice", "alice", true},
		{" Alice_01 ", "alice_01", true},
		{"a.b-c", "a.b-c", true},
		{"abc", "abc", true},
		{strings.Repeat("z", 32), strings.Repeat("z", 32), true},
		{"ab", "", false},
		{strings.Repeat("z", 33), "", false},
		{"", "", false},
		{"al ice", "", false},
		{"alice@x", "", false},
		{"élise", "", false},
		{"al/ice", "", false},
	} {
		got, err := domain.NormalizeUsername(tc.in)
		if tc.ok {
			if err != nil || got != tc.want {
				t.Errorf("NormalizeUsername(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
			continue
		}
		if !errors.Is(err, domain.ErrUsernameInvalid) {
			t.Errorf("NormalizeUsername(%q) = %q, %v; want ErrUsernameInvalid", tc.in, got, err)
		}
	}
}

func TestUserID(t *testing.T) {
	t.Parallel()
	id := domain.NewUserID([5]byte{0x5a, 0x3b, 0x9c, 0x01, 0xf2})
	if id != "ID5A3B9C01F2" {
		t.Fatalf("NewUserID = %q, want ID5A3B9C01F2", id)
	}
	if got, err := domain.ParseUserID(string(id)); err != nil || got != id {
		t.Fatalf("ParseUserID(%q) = %q, %v", id, got, err)
	}
	if id.Stream() != "user-ID5A3B9C01F2" {
		t.Fatalf("Stream = %q", id.Stream())
	}
	if got, err := domain.UserIDFromStream(id.Stream()); err != nil || got != id {
		t.Fatalf("UserIDFromStream(%q) = %q, %v", id.Stream(), got, err)
	}
	for _, bad := range []string{"", "ID", "ID5A3B9C01F", "ID5A3B9C01F2A", "id5A3B9C01F2", "ID5a3b9c01f2", "IDGA3B9C01F2", "XX5A3B9C01F2"} {
		if _, err := domain.ParseUserID(bad); !errors.Is(err, domain.ErrUserIDInvalid) {
			t.Errorf("ParseUserID(%q) = %v, want ErrUserIDInvalid", bad, err)
		}
	}
	for _, bad := range []string{"ID5A3B9C01F2", "wallet-ID5A3B9C01F2", "user-nope"} {
		if _, err := domain.UserIDFromStream(bad); !errors.Is(err, domain.ErrUserIDInvalid) {
			t.Errorf("UserIDFromStream(%q) = %v, want ErrUserIDInvalid", bad, err)
		}
	}
}

func TestRolesAndStates(t *testing.T) {
	t.Parallel()
	for _, r := range domain.Roles() {
		got, err := domain.ParseRole(r.String())
		if err != nil || got != r {
			t.Errorf("ParseRole(%q) = %v, %v", r, got, err)
		}
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		var back domain.Role
		if err := json.Unmarshal(b, &back); err != nil || back != r {
			t.Errorf("role %s JSON round trip = %v, %v", r, back, err)
		}
	}
	if len(domain.Roles()) != 7 {
		t.Errorf("got %d roles, want 7", len(domain.Roles()))
	}
	for _, s := range domain.States() {
		got, err := domain.ParseState(s.String())
		if err != nil || got != s {
			t.Errorf("ParseState(%q) = %v, %v", s, got, err)
		}
	}
	for _, bad := range []string{"", "root", "Admin", "member "} {
		if _, err := domain.ParseRole(bad); !errors.Is(err, domain.ErrRoleInvalid) {
			t.Errorf("ParseRole(%q) = %v, want ErrRoleInvalid", bad, err)
		}
		var r domain.Role
		if err := json.Unmarshal([]byte(`"`+bad+`"`), &r); !errors.Is(err, domain.ErrRoleInvalid) {
			t.Errorf("decoding role %q = %v, want ErrRoleInvalid", bad, err)
		}
	}
	for _, bad := range []string{"", "pending", "Active"} {
		if _, err := domain.ParseState(bad); !errors.Is(err, domain.ErrStateInvalid) {
			t.Errorf("ParseState(%q) = %v, want ErrStateInvalid", bad, err)
		}
	}
	if _, err := json.Marshal(domain.Role{}); !errors.Is(err, domain.ErrRoleInvalid) {
		t.Errorf("marshal zero role = %v, want ErrRoleInvalid", err)
	}
	if _, err := json.Marshal(domain.State{}); !errors.Is(err, domain.ErrStateInvalid) {
		t.Errorf("marshal zero state = %v, want ErrStateInvalid", err)
	}
}
