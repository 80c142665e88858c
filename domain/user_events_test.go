package domain_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/idlog/idlog/domain"
)

func TestEventRegistryNames(t *testing.T) {
	t.Parallel()
	r := domain.NewEventRegistry()
	// Stored names: changing one breaks every stored history, so they are spelled out here.
	want := []string{
		"APIKeyChanged", "APIKeyCreated", "APIKeyDeleted", "AccountClosed", "DataStorageDeleted", "DataStored", "DocumentReviewed", "DocumentUploaded",
		"EmailChanged", "EmailVerificationRequested", "EmailVerified", "LabelAdded", "LabelRemoved", "LabelUpdated", "LevelChanged", "LoginDisabled",
		"LoginEnabled", "LoginFailed", "OTPDisabled", "OTPEnabled", "OTPSecretGenerated", "OTPVerified", "PasswordChanged", "PasswordRehashed",
		"PasswordReset", "PasswordResetRequested", "PermissionCreated", "PermissionDeleted", "PermissionUpdated", "PhoneAdded", "PhoneCodeSent", "PhoneVerified",
		"ProfileCreated", "ProfileStateChanged", "ProfileUpdated", "RequestAudited", "RestrictionCreated", "RestrictionDeleted", "RestrictionUpdated", "RoleChanged",
		"SecretCheckFailed", "SessionEnded", "SessionRefreshed", "SessionStarted", "UserDataUpdated", "UserDeleted", "UserErased", "UserRegistered",
		"UserSettingsChanged", "UserStateChanged", "UsernameChanged", "WalletCredited",
		"WalletDebited",
	}
	if got := r.Types(); !slices.Equal(got, want) {
		t.Fatalf("registered types =\n %v\nwant\n %v", got, want)
	}
	for _, name := range want {
		if v, err := r.SchemaVersion(name); err != nil || v != 1 {
			t.Errorf("SchemaVersion(%s) = %d, %v; want 1", name, v, err)
		}
	}
}

// history runs a life that records every event type, and ends with an email token and a reset
// token pending, two sessions open, a new OTP secret waiting, level 2 by labels and coins in both
// balances.
func history(t *testing.T) (*domain.User, []domain.Event) {
	t.Helper()
	u, events, err := domain.Register(domain.NewUser{
		ID: uid, Email: "alice@example.com", Username: "alice", PasswordHash: hash1,
		RefID: "ID00000000B2", Data: json.RawMessage(`{"lang":"fr"}`), SignupBonus: 100,
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range []cmd{
		requestEmail("e1", at(30)), verifyEmail("e1", at(1)), changeEmail("alice@new.example"),
		changeUsername("alice2"), updateData(`{"lang":"de"}`),
		signIn("s1", at(2), 0), signIn("s2", at(2), 0), failLogin(domain.LoginFailureInvalidPassword, at(3)), signOut("s1"),
		genOTP("sealed-1"), enableOTP(5000), verifyOTP(5001), signIn("s3", at(4), 5002),
		changePassword(hash2, at(5), "s3"), requestReset("r1", at(60)), resetPassword("r1", hash1, at(6)),
		func(u *domain.User) ([]domain.Event, error) { return u.RehashPassword(hash2) },
		changeRole(domain.RoleSupport), changeState(domain.StateLocked, "too many failures", at(7)),
		changeState(domain.StateActive, "", at(8)), deleteUser(at(9)), changeState(domain.StateActive, "restored", at(10)), disableLogin(at(10)), enableLogin,
		failSecret(domain.SecretOTP, "DisableOTP", at(10)), disableOTP(5003), genOTP("sealed-2"),
		signIn("s4", at(11), 0), signInRenewable("s5", at(11), "t0"), refresh("s5", at(12), "t0", "t1"), failLogin(domain.LoginFailureInvalidPassword, at(12)),
		requestEmail("e2", at(60)), requestReset("r2", at(60)),
		addLabel(domain.ActorAdmin, "email", "verified", domain.ScopePrivate), addLabel(domain.ActorAdmin, "phone", "pending", domain.ScopePrivate),
		updateLabel(domain.ActorAdmin, "phone", "verified", domain.ScopePrivate), addLabel(domain.ActorUser, "nickname", "ally", domain.ScopePublic),
		addLabel(domain.ActorUser, "colour", "blue", domain.ScopePublic), removeLabel(domain.ActorUser, "colour", domain.ScopePublic),
		credit(domain.BalanceStandard, 500, "deposit", "pay-1"), spend(150, "order-1"), withdraw(200, "iban-1"),
		func(u *domain.User) ([]domain.Event, error) {
			first, country := "Alice", "fr"
			return u.CreateProfile(domain.ProfilePatch{FirstName: &first, Country: &country}, false, at(12))
		},
		func(u *domain.User) ([]domain.Event, error) {
			city := "Lyon"
			return u.UpdateProfile(domain.ProfilePatch{City: &city}, true, at(12))
		},
		func(u *domain.User) ([]domain.Event, error) {
			return u.ChangeSettings(json.RawMessage(`{"theme":"dark"}`))
		},
		func(u *domain.User) ([]domain.Event, error) {
			return u.AddPhone("+33612345678", "FR", hash1, at(20), at(12))
		},
		func(u *domain.User) ([]domain.Event, error) {
			return u.SendPhoneCode("+33612345678", hash2, at(20))
		},
		func(u *domain.User) ([]domain.Event, error) {
			return u.VerifyPhone("+33612345678", func(h string) bool { return h == hash2 }, at(12))
		},
		func(u *domain.User) ([]domain.Event, error) {
			return u.UploadDocument(domain.NewDocument{ID: "doc-1", DocType: "passport", DocNumber: "AB123", DocExpire: "2999-01-01",
				File: domain.DocumentFile{ContentType: "image/png", Size: 10, SHA256: strings.Repeat("ab", 32)}}, at(12))
		},
		func(u *domain.User) ([]domain.Event, error) {
			return u.ReviewDocument("doc-1", domain.DocumentRejected, "blurred")
		},
		func(u *domain.User) ([]domain.Event, error) {
			return u.StoreData("bank", json.RawMessage(`{"iban":"FR76"}`))
		},
		func(u *domain.User) ([]domain.Event, error) {
			return u.StoreData("tax", json.RawMessage(`{"id":"1"}`))
		},
		func(u *domain.User) ([]domain.Event, error) { return u.DeleteDataStorage("tax") },
		enableOTP(5004),
		func(u *domain.User) ([]domain.Event, error) {
			return u.CreateAPIKey(5005, "k1", "HS256", []string{"trade", "read"}, []byte("sealed-k1"))
		},
		func(u *domain.User) ([]domain.Event, error) {
			return u.CreateAPIKey(5006, "k2", "HS512", nil, []byte("sealed-k2"))
		},
		func(u *domain.User) ([]domain.Event, error) {
			off := domain.APIKeyDisabled
			return u.ChangeAPIKey(5007, "k1", nil, &off)
		},
		func(u *domain.User) ([]domain.Event, error) { return u.DeleteAPIKey(5008, "k2") },
		disableOTP(5009),
		func(u *domain.User) ([]domain.Event, error) {
			return u.AuditRequest("orders", "POST", "api/v2/trade/orders")
		},
	} {
		evs, err := c(u)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		events = append(events, evs...)
	}
	return u, events
}

func TestRehydrateRoundTrip(t *testing.T) {
	t.Parallel()
	live, events := history(t)
	reg := domain.NewEventRegistry()

	seen := map[string]bool{}
	decoded := make([]domain.Event, len(events))
	for i, e := range events {
		seen[e.EventType()] = true
		data, err := json.Marshal(e)
		if err != nil {
			t.Fatalf("encode %s: %v", e.EventType(), err)
		}
		v, err := reg.SchemaVersion(e.EventType())
		if err != nil {
			t.Fatal(err)
		}
		if decoded[i], err = reg.Decode(e.EventType(), v, data); err != nil {
			t.Fatalf("decode %s %s: %v", e.EventType(), data, err)
		}
	}
	for _, name := range reg.Types() {
		if !seen[name] && !roundTripElsewhere[name] {
			t.Errorf("the history never records %s, so its round trip is untested", name)
		}
	}
	if !reflect.DeepEqual(decoded, events) {
		t.Fatalf("decoded events differ from the recorded ones:\n%#v\n%#v", decoded, events)
	}

	rebuilt, err := domain.RehydrateUser(decoded)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := viewOf(rebuilt), viewOf(live); !reflect.DeepEqual(got, want) {
		t.Fatalf("rehydrated user differs:\n got %+v\nwant %+v", got, want)
	}
	if rebuilt.Version() != uint64(len(events)) {
		t.Errorf("Version = %d, want %d", rebuilt.Version(), len(events))
	}
	mustBe(t, "open sessions", len(rebuilt.OpenSessions(at(11))), 2) // s4, s5; the reset ended s3
	mustBe(t, "last step", rebuilt.LastOTPStep(), int64(5009))
	if k, ok := rebuilt.APIKey("k1"); !ok || k.State != domain.APIKeyDisabled || k.Algorithm != "HS256" ||
		!slices.Equal(k.Scopes, []string{"trade", "read"}) || string(k.Ciphertext) != "sealed-k1" {
		t.Errorf("key k1 = %+v, %v; want it disabled with its scopes and sealed secret", k, ok)
	}
	if _, ok := rebuilt.APIKey("k2"); ok {
		t.Error("deleted key k2 is still there")
	}
	mustBe(t, "level", rebuilt.Level(), 2)
	mustBe(t, "wallet", rebuilt.Wallet(), domain.Wallet{Free: 0, Standard: 250})

	// State the accessors do not show (pending tokens) must have survived too: the same commands
	// give the same answers on both.
	for _, c := range []struct {
		name string
		cmd  cmd
		want error
	}{
		{"old email token", verifyEmail("e1", at(13)), domain.ErrTokenInvalid},
		{"old reset token", resetPassword("r1", hash2, at(13)), domain.ErrTokenInvalid},
		{"reset token", resetPassword("r2", hash2, at(13)), nil},
		{"email token", verifyEmail("e2", at(13)), nil},
		{"sign-in", signIn("s6", at(13), 0), nil},
		{"spend too much", spend(251, ""), domain.ErrInsufficientFunds},
		{"spend all", spend(250, ""), nil},
		{"withdraw after", withdraw(1, ""), domain.ErrInsufficientFunds},
		{"remove the private label", removeLabel(domain.ActorAdmin, "email", domain.ScopePrivate), nil},
		{"the user touches a private key", updateLabel(domain.ActorUser, "phone", "nope1", domain.ScopePublic), domain.ErrLabelPrivate},
	} {
		ge, gerr := c.cmd(rebuilt)
		we, werr := c.cmd(live)
		if !errors.Is(gerr, c.want) || !errors.Is(werr, c.want) || !reflect.DeepEqual(ge, we) {
			t.Errorf("%s: rehydrated gives %v, %v; live gives %v, %v; want error %v", c.name, types(ge), gerr, types(we), werr, c.want)
		}
	}
}

// foreignAdded stands for an event of another feature sharing the user's stream.
type foreignAdded struct{}

func (foreignAdded) EventType() string { return "ForeignAdded" }

func TestRehydrateUserHistoryRules(t *testing.T) {
	t.Parallel()
	_, first, err := domain.Register(domain.NewUser{ID: uid, Email: "alice@example.com", PasswordHash: hash1})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		history []domain.Event
	}{
		{"empty", nil},
		{"no UserRegistered first", []domain.Event{domain.EmailVerified{Email: "alice@example.com"}, first[0]}},
		{"UserRegistered twice", []domain.Event{first[0], domain.UsernameChanged{To: "bob"}, first[0]}},
	} {
		if u, err := domain.RehydrateUser(tc.history); !errors.Is(err, domain.ErrNotRegistered) || u != nil {
			t.Errorf("%s: RehydrateUser = %v, %v; want ErrNotRegistered", tc.name, u, err)
		}
	}

	u, err := domain.RehydrateUser([]domain.Event{first[0], foreignAdded{}, domain.UsernameChanged{To: "bob"}})
	if err != nil {
		t.Fatal(err)
	}
	mustBe(t, "version counting an unknown event", u.Version(), uint64(3))
	mustBe(t, "username", u.Username(), "bob")
}
