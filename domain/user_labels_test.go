package domain_test

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/idlog/idlog/domain"
)

var (
	addLabel = func(by domain.ActorKind, key, value string, scope domain.LabelScope) cmd {
		return func(u *domain.User) ([]domain.Event, error) {
			return u.AddLabel(by, domain.Label{Key: key, Value: value, Scope: scope})
		}
	}
	addLabelDesc = func(by domain.ActorKind, key, value string, scope domain.LabelScope, desc string) cmd {
		return func(u *domain.User) ([]domain.Event, error) {
			return u.AddLabel(by, domain.Label{Key: key, Value: value, Scope: scope, Description: desc})
		}
	}
	updateLabel = func(by domain.ActorKind, key, value string, scope domain.LabelScope) cmd {
		return func(u *domain.User) ([]domain.Event, error) {
			return u.UpdateLabel(by, domain.Label{Key: key, Value: value, Scope: scope})
		}
	}
	updateLabelDesc = func(by domain.ActorKind, key, value string, scope domain.LabelScope, desc string) cmd {
		return func(u *domain.User) ([]domain.Event, error) {
			return u.UpdateLabel(by, domain.Label{Key: key, Value: value, Scope: scope, Description: desc})
		}
	}
	removeLabel = func(by domain.ActorKind, key string, scope domain.LabelScope) cmd {
		return func(u *domain.User) ([]domain.Event, error) { return u.RemoveLabel(by, key, scope) }
	}

	admin, member  = domain.ActorAdmin, domain.ActorUser
	public, secret = domain.ScopePublic, domain.ScopePrivate

	verified = func(key string) cmd { return addLabel(admin, key, "verified", secret) }
	level1   = []cmd{verified("email")}
	level3   = []cmd{verified("email"), verified("phone"), verified("document")}
)

// runCases runs command cases against a fresh user each: given steps must succeed; a failing
// command must return no event and leave the user as it was.
func runCases(t *testing.T, newUser func(t *testing.T) *domain.User, cases []commandCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			u := newUser(t)
			for i, c := range tc.given {
				if _, err := c(u); err != nil {
					t.Fatalf("given step %d: %v", i, err)
				}
			}
			before := viewOf(u)
			events, err := tc.when(u)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				if events != nil {
					t.Errorf("failed command returned events %v", types(events))
				}
				if after := viewOf(u); !reflect.DeepEqual(before, after) {
					t.Errorf("failed command changed the user:\nbefore %+v\nafter  %+v", before, after)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if len(events) == 0 {
				t.Fatal("a successful command recorded no event")
			}
			if tc.want != nil && !reflect.DeepEqual(events, tc.want) {
				t.Errorf("events =\n %#v\nwant\n %#v", events, tc.want)
			}
			if tc.check != nil {
				tc.check(t, u)
			}
		})
	}
}

type commandCase struct {
	name    string
	given   []cmd
	when    cmd
	wantErr error
	want    []domain.Event
	check   func(t *testing.T, u *domain.User)
}

func labelsOf(u *domain.User) string {
	var parts []string
	for _, l := range u.Labels() {
		parts = append(parts, fmt.Sprintf("%s=%s/%s", l.Key, l.Value, l.Scope))
	}
	return strings.Join(parts, " ")
}

func TestLabelCommands(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("k", 256)
	runCases(t, register, []commandCase{
		// Adding.
		{name: "user adds a public label", when: addLabel(member, "nickname", "Ally_1", public),
			want: []domain.Event{domain.LabelAdded{Key: "nickname", Value: "Ally_1", Scope: public}},
			check: func(t *testing.T, u *domain.User) {
				mustBe(t, "labels", labelsOf(u), "nickname=Ally_1/public")
				mustBe(t, "level", u.Level(), 0)
			}},
		{name: "user adds a private label", when: addLabel(member, "email", "verified", secret), wantErr: domain.ErrLabelPrivate},
		{name: "user adds a public label with a privately held key", given: level1,
			when: addLabel(member, "email", "verified", public), wantErr: domain.ErrLabelPrivate},
		{name: "a public label never raises the level", when: addLabel(member, "email", "verified", public),
			want:  []domain.Event{domain.LabelAdded{Key: "email", Value: "verified", Scope: public}},
			check: func(t *testing.T, u *domain.User) { mustBe(t, "level", u.Level(), 0) }},
		{name: "admin adds a private label that grants level 1", when: verified("email"),
			want: []domain.Event{domain.LabelAdded{Key: "email", Value: "verified", Scope: secret}, domain.LevelChanged{From: 0, To: 1}}},
		{name: "admin adds a label with a description", when: addLabelDesc(admin, "tier", "gold", secret, "bought the gold plan"),
			want: []domain.Event{domain.LabelAdded{Key: "tier", Value: "gold", Scope: secret, Description: "bought the gold plan"}},
			check: func(t *testing.T, u *domain.User) {
				l, ok := u.Label("tier", secret)
				mustBe(t, "found", ok, true)
				mustBe(t, "description", l.Description, "bought the gold plan")
			}},
		{name: "admin holds one key in both scopes", given: []cmd{addLabel(member, "email", "mine", public)},
			when: verified("email"), check: func(t *testing.T, u *domain.User) {
				mustBe(t, "labels", labelsOf(u), "email=mine/public email=verified/private")
				mustBe(t, "level", u.Level(), 1)
			}},
		{name: "a rung above a missing one grants nothing", when: verified("phone"),
			want: []domain.Event{domain.LabelAdded{Key: "phone", Value: "verified", Scope: secret}}},
		{name: "filling the missing rung grants both", given: []cmd{verified("phone"), verified("document")}, when: verified("email"),
			want: []domain.Event{domain.LabelAdded{Key: "email", Value: "verified", Scope: secret}, domain.LevelChanged{From: 0, To: 3}}},
		{name: "add an existing label", given: []cmd{addLabel(member, "nickname", "ally", public)},
			when: addLabel(member, "nickname", "bob", public), wantErr: domain.ErrLabelExists},
		{name: "add a key too short", when: addLabel(member, "ab", "value", public), wantErr: domain.ErrLabelKeyInvalid},
		{name: "add a key too long", when: addLabel(member, long, "value", public), wantErr: domain.ErrLabelKeyInvalid},
		{name: "add an upper-case key", when: addLabel(member, "Email", "value", public), wantErr: domain.ErrLabelKeyInvalid},
		{name: "add a key with a dot", when: addLabel(member, "e.mail", "value", public), wantErr: domain.ErrLabelKeyInvalid},
		{name: "add a value too short", when: addLabel(member, "key", "ok", public), wantErr: domain.ErrLabelValueInvalid},
		{name: "add a value with a space", when: addLabel(member, "key", "not ok", public), wantErr: domain.ErrLabelValueInvalid},
		{name: "add a value too long", when: addLabel(member, "key", strings.Repeat("V", 256), public), wantErr: domain.ErrLabelValueInvalid},
		{name: "add the longest key and value", when: addLabel(member, long[:255], strings.Repeat("V", 255), public)},
		{name: "add without scope", when: addLabel(admin, "key", "value", domain.LabelScope{}), wantErr: domain.ErrLabelScopeInvalid},
		{name: "add with a control character in the description", when: addLabelDesc(admin, "key", "value", secret, "a\nb"),
			wantErr: domain.ErrLabelDescriptionInvalid},
		{name: "add with a long description", when: addLabelDesc(admin, "key", "value", secret, strings.Repeat("d", 256)),
			wantErr: domain.ErrLabelDescriptionInvalid},
		{name: "add by an unknown actor", when: addLabel(domain.ActorKind{}, "key", "value", public), wantErr: domain.ErrInvalidArgument},
		{name: "banned user adds a label", given: []cmd{ban}, when: addLabel(member, "key", "value", public), wantErr: domain.ErrUserNotActive},
		{name: "admin labels a banned user", given: []cmd{ban}, when: addLabel(admin, "key", "value", secret)},

		// Updating.
		{name: "user updates a public label", given: []cmd{addLabel(member, "nickname", "ally", public)},
			when: updateLabel(member, "nickname", "bob", public),
			want: []domain.Event{domain.LabelUpdated{Key: "nickname", Value: "bob", Scope: public}}},
		{name: "user updates a private label", given: level1, when: updateLabel(member, "email", "forged", secret), wantErr: domain.ErrLabelPrivate},
		{name: "user updates a privately held key as public", given: level1,
			when: updateLabel(member, "email", "forged", public), wantErr: domain.ErrLabelPrivate},
		{name: "update keeps the description when none is given", given: []cmd{addLabelDesc(admin, "tier", "gold", secret, "plan")},
			when: updateLabel(admin, "tier", "silver", secret),
			want: []domain.Event{domain.LabelUpdated{Key: "tier", Value: "silver", Scope: secret, Description: "plan"}}},
		{name: "update only the description", given: []cmd{addLabelDesc(admin, "tier", "gold", secret, "plan")},
			when: updateLabelDesc(admin, "tier", "gold", secret, "new plan"),
			want: []domain.Event{domain.LabelUpdated{Key: "tier", Value: "gold", Scope: secret, Description: "new plan"}}},
		{name: "update to the same value", given: []cmd{addLabel(member, "nickname", "ally", public)},
			when: updateLabel(member, "nickname", "ally", public), wantErr: domain.ErrUnchanged},
		{name: "update a missing label", when: updateLabel(member, "nickname", "ally", public), wantErr: domain.ErrLabelNotFound},
		{name: "update the other scope of a key", given: []cmd{addLabel(member, "nickname", "ally", public)},
			when: updateLabel(admin, "nickname", "ally", secret), wantErr: domain.ErrLabelNotFound},
		{name: "update to an invalid value", given: []cmd{addLabel(member, "nickname", "ally", public)},
			when: updateLabel(member, "nickname", "a!", public), wantErr: domain.ErrLabelValueInvalid},
		{name: "update lowers the level", given: level3, when: updateLabel(admin, "phone", "rejected", secret),
			want: []domain.Event{domain.LabelUpdated{Key: "phone", Value: "rejected", Scope: secret}, domain.LevelChanged{From: 3, To: 1}}},
		{name: "update raises the level", given: []cmd{addLabel(admin, "email", "pending", secret)},
			when: updateLabel(admin, "email", "verified", secret),
			want: []domain.Event{domain.LabelUpdated{Key: "email", Value: "verified", Scope: secret}, domain.LevelChanged{From: 0, To: 1}}},

		// Removing.
		{name: "user removes a public label", given: []cmd{addLabel(member, "nickname", "ally", public)},
			when: removeLabel(member, "nickname", public), want: []domain.Event{domain.LabelRemoved{Key: "nickname", Scope: public}},
			check: func(t *testing.T, u *domain.User) { mustBe(t, "labels", labelsOf(u), "") }},
		{name: "user removes a private label", given: level1, when: removeLabel(member, "email", secret), wantErr: domain.ErrLabelPrivate},
		{name: "user removes a privately held key", given: level1, when: removeLabel(member, "email", public), wantErr: domain.ErrLabelPrivate},
		{name: "remove a missing label", when: removeLabel(admin, "nickname", public), wantErr: domain.ErrLabelNotFound},
		{name: "remove with a bad key", when: removeLabel(admin, "x", public), wantErr: domain.ErrLabelKeyInvalid},
		{name: "remove without scope", when: removeLabel(admin, "email", domain.LabelScope{}), wantErr: domain.ErrLabelScopeInvalid},
		{name: "removing the lowest rung drops to 0", given: level3, when: removeLabel(admin, "email", secret),
			want: []domain.Event{domain.LabelRemoved{Key: "email", Scope: secret}, domain.LevelChanged{From: 3, To: 0}}},
		{name: "removing the top rung drops one", given: level3, when: removeLabel(admin, "document", secret),
			want: []domain.Event{domain.LabelRemoved{Key: "document", Scope: secret}, domain.LevelChanged{From: 3, To: 2}}},

		// Email verification is a label.
		{name: "verify email when an admin verified it already", given: steps(level1, []cmd{requestEmail("e1", at(30))}),
			when: verifyEmail("e1", at(1)), want: []domain.Event{domain.EmailVerified{Email: "alice@example.com"}}},
		{name: "verify email over another value", given: []cmd{addLabelDesc(admin, "email", "rejected", secret, "bounced"), requestEmail("e1", at(30))},
			when: verifyEmail("e1", at(1)),
			want: []domain.Event{domain.EmailVerified{Email: "alice@example.com"},
				domain.LabelUpdated{Key: "email", Value: "verified", Scope: secret, Description: "bounced"}, domain.LevelChanged{From: 0, To: 1}}},
		{name: "changing email keeps other values of the email label", given: []cmd{addLabel(admin, "email", "rejected", secret)},
			when: changeEmail("new@example.com"), want: []domain.Event{domain.EmailChanged{From: "alice@example.com", To: "new@example.com"}}},
		{name: "changing a verified email drops the level from 3", given: level3, when: changeEmail("new@example.com"),
			want: []domain.Event{domain.EmailChanged{From: "alice@example.com", To: "new@example.com"},
				domain.LabelRemoved{Key: "email", Scope: secret}, domain.LevelChanged{From: 3, To: 0}}},
	})
}

func TestLabelsWithAConfiguredLadder(t *testing.T) {
	t.Parallel()
	ladder, err := domain.ParseLevels("email=verified, kyc=approved")
	if err != nil {
		t.Fatal(err)
	}
	withLadder := func(t *testing.T) *domain.User {
		u, _, err := domain.Register(domain.NewUser{ID: uid, Email: "alice@example.com", PasswordHash: hash1, Levels: ladder})
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	runCases(t, withLadder, []commandCase{
		{name: "the second rung is the configured one", given: level1, when: addLabel(admin, "kyc", "approved", secret),
			want: []domain.Event{domain.LabelAdded{Key: "kyc", Value: "approved", Scope: secret}, domain.LevelChanged{From: 1, To: 2}}},
		{name: "the default second rung counts for nothing", given: level1, when: verified("phone"),
			want: []domain.Event{domain.LabelAdded{Key: "phone", Value: "verified", Scope: secret}}},
	})

	// A rehydrated user uses the default ladder until told otherwise.
	_, first, err := domain.Register(domain.NewUser{ID: uid, Email: "alice@example.com", PasswordHash: hash1})
	if err != nil {
		t.Fatal(err)
	}
	u, err := domain.RehydrateUser(first)
	if err != nil {
		t.Fatal(err)
	}
	u.UseLevels(ladder)
	for _, c := range level1 {
		if _, err := c(u); err != nil {
			t.Fatal(err)
		}
	}
	events, err := addLabel(admin, "kyc", "approved", secret)(u)
	if err != nil || len(events) != 2 || u.Level() != 2 {
		t.Fatalf("with UseLevels: events %v, err %v, level %d; want LabelAdded, LevelChanged, level 2", types(events), err, u.Level())
	}

	// No ladder: everyone stays at level 0.
	none, err := domain.NewLevels()
	if err != nil {
		t.Fatal(err)
	}
	u.UseLevels(none)
	events, err = removeLabel(admin, "kyc", secret)(u)
	if err != nil || !reflect.DeepEqual(events, []domain.Event{domain.LabelRemoved{Key: "kyc", Scope: secret}, domain.LevelChanged{From: 2, To: 0}}) {
		t.Fatalf("with no ladder: %v, %v", events, err)
	}
}

func TestLabelScope(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"public", "private"} {
		s, err := domain.ParseLabelScope(name)
		if err != nil || s.String() != name {
			t.Errorf("ParseLabelScope(%q) = %v, %v", name, s, err)
		}
		var back domain.LabelScope
		text, err := s.MarshalText()
		if err != nil || back.UnmarshalText(text) != nil || back != s {
			t.Errorf("%s does not round-trip as text: %s, %v", name, text, err)
		}
	}
	for _, name := range []string{"", "Public", "secret"} {
		if _, err := domain.ParseLabelScope(name); !errors.Is(err, domain.ErrLabelScopeInvalid) {
			t.Errorf("ParseLabelScope(%q) = %v, want ErrLabelScopeInvalid", name, err)
		}
	}
	if _, err := (domain.LabelScope{}).MarshalText(); !errors.Is(err, domain.ErrLabelScopeInvalid) {
		t.Errorf("zero scope marshals: %v", err)
	}
}
