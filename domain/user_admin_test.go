package domain_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/idlog/idlog/domain"
)

// Administrators' commands (user_admin.go).
var (
	disableLogin = func(now time.Time) cmd {
		return func(u *domain.User) ([]domain.Event, error) { return u.DisableLogin(now) }
	}
	enableLogin cmd = func(u *domain.User) ([]domain.Event, error) { return u.EnableLogin() }
	resetOTP    cmd = func(u *domain.User) ([]domain.Event, error) { return u.ResetOTP() }
	closeUser       = func(now time.Time) cmd {
		return func(u *domain.User) ([]domain.Event, error) { return u.Close(now) }
	}
)

// roundTripElsewhere names the event types TestRehydrateRoundTrip's history cannot record, because
// nothing may follow them (TestClosedRoundTrip covers them), or because they are not a user's
// (the access policy's, TestAccessPolicyRoundTrip).
var roundTripElsewhere = map[string]bool{
	"AccountClosed": true, "UserErased": true, "PermissionCreated": true, "PermissionUpdated": true, "PermissionDeleted": true,
	"RestrictionCreated": true, "RestrictionUpdated": true, "RestrictionDeleted": true,
}

func TestAdminCommands(t *testing.T) {
	t.Parallel()
	named := func(u *domain.User) ([]domain.Event, error) { return u.ChangeUsername("alice") }
	runCases(t, register, []commandCase{
		{name: "disable login ends every session and keeps the state", given: twoIns, when: disableLogin(at(1)),
			want: []domain.Event{domain.LoginDisabled{},
				domain.SessionEnded{SessionID: "s1", Reason: domain.SessionEndLoginDisabled},
				domain.SessionEnded{SessionID: "s2", Reason: domain.SessionEndLoginDisabled}},
			check: func(t *testing.T, u *domain.User) {
				mustBe(t, "login disabled", u.LoginDisabled(), true)
				mustBe(t, "state", u.State(), domain.StateActive)
				mustBe(t, "open sessions", len(u.OpenSessions(at(1))), 0)
			}},
		{name: "sign in with login disabled", given: []cmd{disableLogin(at(0))}, when: signIn("s1", at(1), 0), wantErr: domain.ErrLoginDisabled},
		{name: "the account still works for an administrator with login disabled", given: []cmd{disableLogin(at(0))},
			when: changeRole(domain.RoleSupport)},
		{name: "disable login twice", given: []cmd{disableLogin(at(0))}, when: disableLogin(at(1)), wantErr: domain.ErrUnchanged},
		{name: "disable login without time", when: disableLogin(time.Time{}), wantErr: domain.ErrInvalidArgument},
		{name: "disable login of a banned user", given: []cmd{ban}, when: disableLogin(at(2)), want: []domain.Event{domain.LoginDisabled{}}},
		{name: "enable login", given: []cmd{disableLogin(at(0))}, when: enableLogin, want: []domain.Event{domain.LoginEnabled{}},
			check: func(t *testing.T, u *domain.User) {
				mustBe(t, "login disabled", u.LoginDisabled(), false)
				if _, err := u.StartSession(domain.SessionStart{SessionID: "s9", At: at(2), ExpiresAt: at(20)}); err != nil {
					t.Errorf("sign-in after enabling login: %v", err)
				}
			}},
		{name: "enable login when enabled", when: enableLogin, wantErr: domain.ErrUnchanged},
		{name: "enable login of a banned user leaves them banned", given: []cmd{ban, disableLogin(at(2))}, when: enableLogin,
			check: func(t *testing.T, u *domain.User) {
				if _, err := u.StartSession(domain.SessionStart{SessionID: "s9", At: at(2), ExpiresAt: at(20)}); !errors.Is(err, domain.ErrUserNotActive) {
					t.Errorf("sign-in of a banned user = %v, want ErrUserNotActive", err)
				}
			}},

		{name: "reset OTP needs no code and keeps the last step", given: steps(otpOn, []cmd{verifyOTP(1005)}), when: resetOTP,
			want: []domain.Event{domain.OTPDisabled{Step: 1005}},
			check: func(t *testing.T, u *domain.User) {
				mustBe(t, "enabled", u.OTPEnabled(), false)
				mustBe(t, "secret", u.OTPSecret() == nil, true)
				mustBe(t, "last step", u.LastOTPStep(), int64(1005))
			}},
		{name: "reset OTP of a locked user", given: steps(otpOn, []cmd{changeState(domain.StateLocked, "", at(1))}), when: resetOTP,
			want: []domain.Event{domain.OTPDisabled{Step: 1000}}},
		{name: "reset OTP when off", when: resetOTP, wantErr: domain.ErrOTPNotEnabled},

		{name: "close ends every session and names the released keys", given: steps(twoIns, []cmd{named}), when: closeUser(at(1)),
			want: []domain.Event{domain.AccountClosed{Email: "alice@example.com", Username: "alice"},
				domain.SessionEnded{SessionID: "s1", Reason: domain.SessionEndAccountClosed},
				domain.SessionEnded{SessionID: "s2", Reason: domain.SessionEndAccountClosed}},
			check: func(t *testing.T, u *domain.User) {
				mustBe(t, "closed", u.Closed(), true)
				mustBe(t, "state", u.State(), domain.StateDeleted)
			}},
		{name: "close a self-deleted user", given: []cmd{deleteUser(at(0))}, when: closeUser(at(1)),
			want: []domain.Event{domain.AccountClosed{Email: "alice@example.com"}}},
		{name: "close twice", given: []cmd{closeUser(at(0))}, when: closeUser(at(1)), wantErr: domain.ErrAccountClosed},
		{name: "close without time", when: closeUser(time.Time{}), wantErr: domain.ErrInvalidArgument},
		{name: "a closed account cannot be restored", given: []cmd{closeUser(at(0))}, when: changeState(domain.StateActive, "", at(1)), wantErr: domain.ErrAccountClosed},
		{name: "a closed account keeps its role", given: []cmd{closeUser(at(0))}, when: changeRole(domain.RoleAdmin), wantErr: domain.ErrAccountClosed},
		{name: "a closed account gets no label", given: []cmd{closeUser(at(0))},
			when: addLabel(domain.ActorAdmin, "kyc", "verified", domain.ScopePrivate), wantErr: domain.ErrAccountClosed},
		{name: "a closed account gets no coins", given: []cmd{closeUser(at(0))},
			when: credit(domain.BalanceFree, 5, "deposit", ""), wantErr: domain.ErrAccountClosed},
		{name: "a closed account cannot sign in", given: []cmd{closeUser(at(0))}, when: signIn("s1", at(1), 0), wantErr: domain.ErrUserNotActive},
		{name: "a closed account's login stays as it is", given: []cmd{closeUser(at(0))}, when: disableLogin(at(1)), wantErr: domain.ErrAccountClosed},
		{name: "a closed account's OTP stays as it is", given: steps(otpOn, []cmd{closeUser(at(0))}), when: resetOTP, wantErr: domain.ErrAccountClosed},
	})
}

// TestClosedRoundTrip stores and rebuilds a closed account, which TestRehydrateRoundTrip's history
// cannot hold: the rebuilt user is closed too, and refuses what the live one refuses.
func TestClosedRoundTrip(t *testing.T) {
	t.Parallel()
	live, events, err := domain.Register(domain.NewUser{ID: uid, Email: "alice@example.com", Username: "alice", PasswordHash: hash1})
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range []cmd{signIn("s1", at(0), 0), disableLogin(at(1)), closeUser(at(2))} {
		evs, err := c(live)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		events = append(events, evs...)
	}
	reg := domain.NewEventRegistry()
	decoded := make([]domain.Event, len(events))
	for i, e := range events {
		data, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		if decoded[i], err = reg.Decode(e.EventType(), 1, data); err != nil {
			t.Fatalf("decode %s %s: %v", e.EventType(), data, err)
		}
	}
	if !reflect.DeepEqual(decoded, events) {
		t.Fatalf("decoded events differ:\n%#v\n%#v", decoded, events)
	}
	rebuilt, err := domain.RehydrateUser(decoded)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := viewOf(rebuilt), viewOf(live); !reflect.DeepEqual(got, want) {
		t.Fatalf("rehydrated user differs:\n got %+v\nwant %+v", got, want)
	}
	mustBe(t, "closed", rebuilt.Closed(), true)
	if _, err := rebuilt.ChangeState(domain.StateActive, "", at(3)); !errors.Is(err, domain.ErrAccountClosed) {
		t.Errorf("restoring the rebuilt closed user = %v, want ErrAccountClosed", err)
	}
}
