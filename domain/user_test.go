package domain_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/idlog/idlog/domain"
)

// The domain never sees passwords or tokens, only what auth makes of them; these stand in.
const (
	hash1 = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaDFoYXNoMWhhc2gxaGFzaDFoYXNoMWhhc2gx"
	hash2 = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdDJzYWx0MnNhbHQy$aGFzaDJoYXNoMmhhc2gyaGFzaDJoYXNoMmhhc2gy"
	uid   = domain.UserID("ID00000000A1")
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func at(minutes int) time.Time { return t0.Add(time.Duration(minutes) * time.Minute) }

func tokenHash(plain string) string {
	sum := sha256.Sum256([]byte(plain))
	return hex.EncodeToString(sum[:])
}

func register(t *testing.T) *domain.User {
	t.Helper()
	u, _, err := domain.Register(domain.NewUser{ID: uid, Email: "alice@example.com", PasswordHash: hash1})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func types(events []domain.Event) []string {
	var out []string
	for _, e := range events {
		out = append(out, e.EventType())
	}
	return out
}

// view is everything a User shows, gathered so that states can be compared whole.
type view struct {
	ID              domain.UserID
	Email           string
	EmailVerified   bool
	Username, Hash  string
	Role, State     string
	Active          bool
	LoginDisabled   bool
	Closed          bool
	RefID           domain.UserID
	Data            string
	OTPEnabled      bool
	OTPSecret       []byte
	KYC             string
	LastOTPStep     int64
	OpenSessions    []string
	FailedLogins    int
	LastFailedLogin string
	Level           int
	Labels          string
	Wallet          domain.Wallet
}

func viewOf(u *domain.User) view {
	n, last := u.FailedLogins()
	return view{
		ID: u.ID(), Email: u.Email(), EmailVerified: u.EmailVerified(), Username: u.Username(),
		Hash: u.PasswordHash(), Role: u.Role().String(), State: u.State().String(), RefID: u.RefID(),
		Data: string(u.Data()), OTPEnabled: u.OTPEnabled(), OTPSecret: u.OTPSecret(),
		LastOTPStep: u.LastOTPStep(), OpenSessions: u.OpenSessions(at(0)), FailedLogins: n,
		LastFailedLogin: last.Format(time.RFC3339Nano), Active: u.IsActive(), LoginDisabled: u.LoginDisabled(), Closed: u.Closed(),
		Level: u.Level(), Labels: fmt.Sprint(u.Labels()), Wallet: u.Wallet(),
		KYC: fmt.Sprint(u.Phones(), u.Documents(), u.DataStorage()),
	}
}

func TestRegister(t *testing.T) {
	t.Parallel()
	valid := domain.NewUser{ID: uid, Email: "alice@example.com", PasswordHash: hash1}
	with := func(f func(*domain.NewUser)) domain.NewUser { n := valid; f(&n); return n }
	for _, tc := range []struct {
		name    string
		in      domain.NewUser
		wantErr error
		check   func(t *testing.T, u *domain.User, e domain.UserRegistered)
	}{
		{name: "minimal user is an active member with unverified email", in: valid,
			check: func(t *testing.T, u *domain.User, e domain.UserRegistered) {
				want := domain.UserRegistered{UserID: uid, Email: "alice@example.com", PasswordHash: hash1, Role: domain.RoleMember}
				if !reflect.DeepEqual(e, want) {
					t.Errorf("event = %+v, want %+v", e, want)
				}
				if u.State() != domain.StateActive || u.EmailVerified() || u.OTPEnabled() || u.Role() != domain.RoleMember || u.Version() != 0 {
					t.Errorf("new user: state %s verified %v otp %v role %s version %d", u.State(), u.EmailVerified(), u.OTPEnabled(), u.Role(), u.Version())
				}
			}},
		{name: "everything given is normalised",
			in: domain.NewUser{ID: uid, Email: " Alice@Example.COM ", Username: "Alice_1", PasswordHash: hash1,
				Role: domain.RoleAdmin, RefID: "ID00000000B2", Data: json.RawMessage(`{ "lang" : "fr" }`)},
			check: func(t *testing.T, u *domain.User, e domain.UserRegistered) {
				want := domain.UserRegistered{UserID: uid, Email: "alice@example.com", Username: "alice_1", PasswordHash: hash1,
					Role: domain.RoleAdmin, RefID: "ID00000000B2", Data: json.RawMessage(`{"lang":"fr"}`)}
				if !reflect.DeepEqual(e, want) {
					t.Errorf("event = %+v, want %+v", e, want)
				}
				if u.Username() != "alice_1" || u.RefID() != "ID00000000B2" || string(u.Data()) != `{"lang":"fr"}` || u.Role() != domain.RoleAdmin {
					t.Errorf("user = %+v", viewOf(u))
				}
			}},
		{name: "JSON null data is no data", in: with(func(n *domain.NewUser) { n.Data = json.RawMessage("null") }),
			check: func(t *testing.T, u *domain.User, e domain.UserRegistered) {
				if e.Data != nil || u.Data() != nil {
					t.Errorf("data = %s / %s, want none", e.Data, u.Data())
				}
			}},
		{name: "bad id", in: with(func(n *domain.NewUser) { n.ID = "U1" }), wantErr: domain.ErrUserIDInvalid},
		{name: "bad email", in: with(func(n *domain.NewUser) { n.Email = "alice" }), wantErr: domain.ErrEmailInvalid},
		{name: "bad username", in: with(func(n *domain.NewUser) { n.Username = "a" }), wantErr: domain.ErrUsernameInvalid},
		{name: "plain password instead of a hash", in: with(func(n *domain.NewUser) { n.PasswordHash = "hunter2hunter2" }), wantErr: domain.ErrInvalidArgument},
		{name: "no password hash", in: with(func(n *domain.NewUser) { n.PasswordHash = "" }), wantErr: domain.ErrInvalidArgument},
		{name: "bad referrer", in: with(func(n *domain.NewUser) { n.RefID = "bob" }), wantErr: domain.ErrRefIDInvalid},
		{name: "self referral", in: with(func(n *domain.NewUser) { n.RefID = string(uid) }), wantErr: domain.ErrRefIDInvalid},
		{name: "data not JSON", in: with(func(n *domain.NewUser) { n.Data = json.RawMessage("{nope") }), wantErr: domain.ErrDataInvalid},
		{name: "data too large", in: with(func(n *domain.NewUser) {
			n.Data = json.RawMessage(`{"x":"` + strings.Repeat("x", domain.MaxUserDataBytes) + `"}`)
		}), wantErr: domain.ErrDataInvalid},
		// The API documents data as an object or an array; a string of JSON text that is itself a
		// JSON string ("\"\"") was found by FuzzRequestDecoders and answered a contract-breaking user.
		{name: "data a string", in: with(func(n *domain.NewUser) { n.Data = json.RawMessage(`"\"\""`) }), wantErr: domain.ErrDataInvalid},
		{name: "data a number", in: with(func(n *domain.NewUser) { n.Data = json.RawMessage(`12`) }), wantErr: domain.ErrDataInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			u, events, err := domain.Register(tc.in)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) || u != nil || events != nil {
					t.Fatalf("Register = %v, %v, %v; want error %v", u, events, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(events) != 1 {
				t.Fatalf("events = %v, want one UserRegistered", types(events))
			}
			tc.check(t, u, events[0].(domain.UserRegistered))
		})
	}
}

// cmd is one command run against a user.
type cmd func(u *domain.User) ([]domain.Event, error)

// Commands used as steps of the scenarios below.
var (
	requestEmail = func(token string, expires time.Time) cmd {
		return func(u *domain.User) ([]domain.Event, error) {
			return u.RequestEmailVerification(tokenHash(token), expires)
		}
	}
	verifyEmail = func(token string, now time.Time) cmd {
		return func(u *domain.User) ([]domain.Event, error) { return u.VerifyEmail(tokenHash(token), now) }
	}
	requestReset = func(token string, expires time.Time) cmd {
		return func(u *domain.User) ([]domain.Event, error) { return u.RequestPasswordReset(tokenHash(token), expires) }
	}
	resetPassword = func(token, hash string, now time.Time) cmd {
		return func(u *domain.User) ([]domain.Event, error) { return u.ResetPassword(tokenHash(token), hash, now) }
	}
	changePassword = func(hash string, now time.Time, keep string) cmd {
		return func(u *domain.User) ([]domain.Event, error) { return u.ChangePassword(hash, now, keep) }
	}
	signIn = func(sid string, now time.Time, step int64) cmd {
		return func(u *domain.User) ([]domain.Event, error) {
			return u.StartSession(domain.SessionStart{SessionID: sid, At: now, ExpiresAt: now.Add(15 * time.Minute), OTPStep: step})
		}
	}
	// signInRenewable opens a session of one day at most whose refresh token is `token`.
	signInRenewable = func(sid string, now time.Time, token string) cmd {
		return func(u *domain.User) ([]domain.Event, error) {
			return u.StartSession(domain.SessionStart{SessionID: sid, At: now, ExpiresAt: now.Add(time.Hour),
				RefreshHash: tokenHash(token), EndsAt: now.Add(24 * time.Hour), CSRFHash: tokenHash("csrf-" + sid)})
		}
	}
	refresh = func(sid string, now time.Time, token, next string) cmd {
		return func(u *domain.User) ([]domain.Event, error) {
			return u.RefreshSession(domain.SessionRefresh{SessionID: sid, TokenHash: tokenHash(token), NewHash: tokenHash(next),
				At: now, ExpiresAt: now.Add(time.Hour)})
		}
	}
	revoke = func(sid string, reason domain.SessionEnd) cmd {
		return func(u *domain.User) ([]domain.Event, error) { return u.RevokeSession(sid, reason) }
	}
	signOut = func(sid string) cmd {
		return func(u *domain.User) ([]domain.Event, error) { return u.EndSession(sid) }
	}
	failLogin = func(r domain.LoginFailure, now time.Time) cmd {
		return func(u *domain.User) ([]domain.Event, error) { return u.FailLogin(r, now) }
	}
	failSecret = func(s domain.Secret, action string, now time.Time) cmd {
		return func(u *domain.User) ([]domain.Event, error) { return u.FailSecretCheck(s, action, now) }
	}
	changeEmail = func(e string) cmd {
		return func(u *domain.User) ([]domain.Event, error) { return u.ChangeEmail(e) }
	}
	changeUsername = func(n string) cmd {
		return func(u *domain.User) ([]domain.Event, error) { return u.ChangeUsername(n) }
	}
	updateData = func(d string) cmd {
		return func(u *domain.User) ([]domain.Event, error) { return u.UpdateData(json.RawMessage(d)) }
	}
	genOTP = func(secret string) cmd {
		return func(u *domain.User) ([]domain.Event, error) { return u.GenerateOTPSecret([]byte(secret)) }
	}
	enableOTP = func(step int64) cmd {
		return func(u *domain.User) ([]domain.Event, error) { return u.EnableOTP(step) }
	}
	verifyOTP = func(step int64) cmd {
		return func(u *domain.User) ([]domain.Event, error) { return u.VerifyOTP(step) }
	}
	disableOTP = func(step int64) cmd {
		return func(u *domain.User) ([]domain.Event, error) { return u.DisableOTP(step) }
	}
	changeRole = func(r domain.Role) cmd {
		return func(u *domain.User) ([]domain.Event, error) { return u.ChangeRole(r) }
	}
	changeState = func(s domain.State, reason string, now time.Time) cmd {
		return func(u *domain.User) ([]domain.Event, error) { return u.ChangeState(s, reason, now) }
	}
	deleteUser = func(now time.Time) cmd {
		return func(u *domain.User) ([]domain.Event, error) { return u.Delete(now) }
	}
	ban    = changeState(domain.StateBanned, "fraud", at(1))
	otpOn  = []cmd{genOTP("sealed-secret"), enableOTP(1000)}
	twoIns = []cmd{signIn("s1", at(0), 0), signIn("s2", at(0), 0)}
)

func steps(groups ...[]cmd) []cmd {
	var out []cmd
	for _, g := range groups {
		out = append(out, g...)
	}
	return out
}

func TestUserCommands(t *testing.T) {
	t.Parallel()
	runCases(t, register, []commandCase{
		// Email verification.
		{name: "request email verification", when: requestEmail("e1", at(30)),
			want: []domain.Event{domain.EmailVerificationRequested{Email: "alice@example.com", TokenHash: tokenHash("e1"), ExpiresAt: at(30)}}},
		{name: "request email verification: expiry stored in UTC",
			when: requestEmail("e1", at(30).In(time.FixedZone("X", 3600))),
			want: []domain.Event{domain.EmailVerificationRequested{Email: "alice@example.com", TokenHash: tokenHash("e1"), ExpiresAt: at(30)}}},
		{name: "request email verification with a plain token", wantErr: domain.ErrInvalidArgument,
			when: func(u *domain.User) ([]domain.Event, error) {
				return u.RequestEmailVerification("dGhpcyBpcyBhIHBsYWluIHRva2VuIG9mIDMyIGJ5dGVzISE", at(30))
			}},
		{name: "request email verification with upper-case hex", wantErr: domain.ErrInvalidArgument,
			when: func(u *domain.User) ([]domain.Event, error) {
				return u.RequestEmailVerification(strings.ToUpper(tokenHash("e1")), at(30))
			}},
		{name: "request email verification without expiry", when: requestEmail("e1", time.Time{}), wantErr: domain.ErrInvalidArgument},
		{name: "request email verification when verified", given: []cmd{requestEmail("e1", at(30)), verifyEmail("e1", at(1))},
			when: requestEmail("e2", at(30)), wantErr: domain.ErrEmailAlreadyVerified},
		{name: "request email verification when banned", given: []cmd{ban}, when: requestEmail("e1", at(30)), wantErr: domain.ErrUserNotActive},
		{name: "verify email", given: []cmd{requestEmail("e1", at(30))}, when: verifyEmail("e1", at(29)),
			want: []domain.Event{domain.EmailVerified{Email: "alice@example.com"},
				domain.LabelAdded{Key: "email", Value: "verified", Scope: domain.ScopePrivate},
				domain.LevelChanged{From: 0, To: 1}},
			check: func(t *testing.T, u *domain.User) {
				mustBe(t, "verified", u.EmailVerified(), true)
				mustBe(t, "level", u.Level(), 1)
			}},
		{name: "verify email with a wrong token", given: []cmd{requestEmail("e1", at(30))}, when: verifyEmail("e2", at(1)), wantErr: domain.ErrTokenInvalid},
		{name: "verify email never requested", when: verifyEmail("e1", at(1)), wantErr: domain.ErrTokenInvalid},
		{name: "verify email with a replaced token", given: []cmd{requestEmail("e1", at(30)), requestEmail("e2", at(30))},
			when: verifyEmail("e1", at(1)), wantErr: domain.ErrTokenInvalid},
		{name: "verify email at the expiry", given: []cmd{requestEmail("e1", at(30))}, when: verifyEmail("e1", at(30)), wantErr: domain.ErrTokenExpired},
		{name: "verify email twice", given: []cmd{requestEmail("e1", at(30)), verifyEmail("e1", at(1))},
			when: verifyEmail("e1", at(2)), wantErr: domain.ErrEmailAlreadyVerified},
		{name: "verify email after the address changed", given: []cmd{requestEmail("e1", at(30)), changeEmail("new@example.com")},
			when: verifyEmail("e1", at(1)), wantErr: domain.ErrTokenInvalid},
		{name: "verify email when locked", given: []cmd{requestEmail("e1", at(30)), changeState(domain.StateLocked, "", at(1))},
			when: verifyEmail("e1", at(1)), wantErr: domain.ErrUserNotActive},

		// Passwords.
		{name: "change password ends the other sessions", given: steps(twoIns, []cmd{signIn("s3", at(0), 0)}),
			when: changePassword(hash2, at(1), "s2"),
			want: []domain.Event{domain.PasswordChanged{PasswordHash: hash2},
				domain.SessionEnded{SessionID: "s1", Reason: domain.SessionEndPasswordChanged},
				domain.SessionEnded{SessionID: "s3", Reason: domain.SessionEndPasswordChanged}},
			check: func(t *testing.T, u *domain.User) {
				mustBe(t, "hash", u.PasswordHash(), hash2)
				mustBe(t, "sessions", fmt.Sprint(u.OpenSessions(at(1))), "[s2]")
			}},
		{name: "change password without a session to keep", given: twoIns, when: changePassword(hash2, at(1), ""),
			want: []domain.Event{domain.PasswordChanged{PasswordHash: hash2},
				domain.SessionEnded{SessionID: "s1", Reason: domain.SessionEndPasswordChanged},
				domain.SessionEnded{SessionID: "s2", Reason: domain.SessionEndPasswordChanged}}},
		{name: "change password to a plain password", when: changePassword("correct horse", at(1), ""), wantErr: domain.ErrInvalidArgument},
		{name: "change password when banned", given: []cmd{ban}, when: changePassword(hash2, at(1), ""), wantErr: domain.ErrUserNotActive},
		{name: "change password cancels a pending reset", given: []cmd{requestReset("r1", at(30)), changePassword(hash2, at(1), "")},
			when: resetPassword("r1", hash1, at(2)), wantErr: domain.ErrTokenInvalid},
		{name: "request password reset", when: requestReset("r1", at(30)),
			want: []domain.Event{domain.PasswordResetRequested{TokenHash: tokenHash("r1"), ExpiresAt: at(30)}}},
		{name: "request password reset when deleted", given: []cmd{deleteUser(at(1))}, when: requestReset("r1", at(30)), wantErr: domain.ErrUserNotActive},
		{name: "request password reset with a bad hash", when: func(u *domain.User) ([]domain.Event, error) {
			return u.RequestPasswordReset("abc", at(30))
		}, wantErr: domain.ErrInvalidArgument},
		{name: "reset password ends every session", given: steps([]cmd{requestReset("r1", at(30))}, twoIns),
			when: resetPassword("r1", hash2, at(5)),
			want: []domain.Event{domain.PasswordReset{PasswordHash: hash2},
				domain.SessionEnded{SessionID: "s1", Reason: domain.SessionEndPasswordReset},
				domain.SessionEnded{SessionID: "s2", Reason: domain.SessionEndPasswordReset}},
			check: func(t *testing.T, u *domain.User) {
				mustBe(t, "hash", u.PasswordHash(), hash2)
				mustBe(t, "sessions", len(u.OpenSessions(at(5))), 0)
			}},
		{name: "reset password leaves expired sessions alone", given: []cmd{requestReset("r1", at(30)), signIn("s1", at(0), 0)},
			when: resetPassword("r1", hash2, at(20)), want: []domain.Event{domain.PasswordReset{PasswordHash: hash2}}},
		{name: "reset password with a wrong token", given: []cmd{requestReset("r1", at(30))}, when: resetPassword("r2", hash2, at(1)), wantErr: domain.ErrTokenInvalid},
		{name: "reset password never requested", when: resetPassword("r1", hash2, at(1)), wantErr: domain.ErrTokenInvalid},
		{name: "reset password after expiry", given: []cmd{requestReset("r1", at(30))}, when: resetPassword("r1", hash2, at(31)), wantErr: domain.ErrTokenExpired},
		{name: "reset password twice", given: []cmd{requestReset("r1", at(30)), resetPassword("r1", hash2, at(1))},
			when: resetPassword("r1", hash1, at(2)), wantErr: domain.ErrTokenInvalid},
		{name: "reset password to a plain password", given: []cmd{requestReset("r1", at(30))}, when: resetPassword("r1", "pw", at(1)), wantErr: domain.ErrInvalidArgument},
		{name: "reset password when locked", given: []cmd{requestReset("r1", at(30)), changeState(domain.StateLocked, "", at(1))},
			when: resetPassword("r1", hash2, at(1)), wantErr: domain.ErrUserNotActive},
		{name: "reset password after the email changed", given: []cmd{requestReset("r1", at(30)), changeEmail("new@example.com")},
			when: resetPassword("r1", hash2, at(1)), wantErr: domain.ErrTokenInvalid},

		// Email, username, data.
		{name: "change email unverifies it", given: []cmd{requestEmail("e1", at(30)), verifyEmail("e1", at(1))},
			when: changeEmail(" New@Example.com"),
			want: []domain.Event{domain.EmailChanged{From: "alice@example.com", To: "new@example.com"},
				domain.LabelRemoved{Key: "email", Scope: domain.ScopePrivate}, domain.LevelChanged{From: 1, To: 0}},
			check: func(t *testing.T, u *domain.User) {
				mustBe(t, "email", u.Email(), "new@example.com")
				mustBe(t, "verified", u.EmailVerified(), false)
				mustBe(t, "level", u.Level(), 0)
			}},
		{name: "change an unverified email records no label", when: changeEmail("new@example.com"),
			want: []domain.Event{domain.EmailChanged{From: "alice@example.com", To: "new@example.com"}}},
		{name: "change email to the same address", when: changeEmail("ALICE@example.com"), wantErr: domain.ErrUnchanged},
		{name: "change email to an invalid address", when: changeEmail("new@"), wantErr: domain.ErrEmailInvalid},
		{name: "change email when banned", given: []cmd{ban}, when: changeEmail("new@example.com"), wantErr: domain.ErrUserNotActive},
		{name: "first username", when: changeUsername("Alice"), want: []domain.Event{domain.UsernameChanged{To: "alice"}}},
		{name: "change username", given: []cmd{changeUsername("alice")}, when: changeUsername("bob"),
			want: []domain.Event{domain.UsernameChanged{From: "alice", To: "bob"}}},
		{name: "change username to the same", given: []cmd{changeUsername("alice")}, when: changeUsername("ALICE"), wantErr: domain.ErrUnchanged},
		{name: "change username to an invalid one", when: changeUsername("x"), wantErr: domain.ErrUsernameInvalid},
		{name: "remove username", given: []cmd{changeUsername("alice")}, when: changeUsername(""), wantErr: domain.ErrUsernameInvalid},
		{name: "change username when deleted", given: []cmd{deleteUser(at(1))}, when: changeUsername("bob"), wantErr: domain.ErrUserNotActive},
		{name: "update data", when: updateData(`{"a": [1, 2]}`), want: []domain.Event{domain.UserDataUpdated{Data: json.RawMessage(`{"a":[1,2]}`)}},
			check: func(t *testing.T, u *domain.User) { mustBe(t, "data", string(u.Data()), `{"a":[1,2]}`) }},
		{name: "update data to the same", given: []cmd{updateData(`{"a":1}`)}, when: updateData(` { "a" : 1 } `), wantErr: domain.ErrUnchanged},
		{name: "remove data", given: []cmd{updateData(`{"a":1}`)}, when: updateData(`null`), want: []domain.Event{domain.UserDataUpdated{}},
			check: func(t *testing.T, u *domain.User) { mustBe(t, "data", u.Data() == nil, true) }},
		{name: "update data with invalid JSON", when: updateData(`{"a":`), wantErr: domain.ErrDataInvalid},
		{name: "update data when locked", given: []cmd{changeState(domain.StateLocked, "", at(1))}, when: updateData(`{"a":2}`), wantErr: domain.ErrUserNotActive},
		{name: "update data to a bare string", when: updateData(`"abc"`), wantErr: domain.ErrDataInvalid},
		{name: "update data to true", when: updateData(`true`), wantErr: domain.ErrDataInvalid},

		// Sessions and failed sign-ins.
		{name: "sign in", when: signIn("s1", at(0), 0),
			want: []domain.Event{domain.SessionStarted{SessionID: "s1", At: at(0), ExpiresAt: at(15)}},
			check: func(t *testing.T, u *domain.User) {
				mustBe(t, "open at 14", u.HasSession("s1", at(14)), true)
				mustBe(t, "open at 15", u.HasSession("s1", at(15)), false)
			}},
		{name: "sign in clears failed sign-ins", given: []cmd{failLogin(domain.LoginFailureInvalidPassword, at(0)), failLogin(domain.LoginFailureInvalidPassword, at(1))},
			when: signIn("s1", at(2), 0), check: func(t *testing.T, u *domain.User) {
				n, last := u.FailedLogins()
				mustBe(t, "failures", n, 0)
				mustBe(t, "last failure", last.IsZero(), true)
			}},
		{name: "sign in forgets expired sessions", given: []cmd{signIn("s1", at(0), 0), signIn("s2", at(10), 0)},
			when: signIn("s3", at(20), 0), check: func(t *testing.T, u *domain.User) {
				mustBe(t, "open at 0", fmt.Sprint(u.OpenSessions(at(0))), "[s2 s3]")
				if _, err := u.EndSession("s1"); !errors.Is(err, domain.ErrSessionNotFound) {
					t.Errorf("ending a forgotten session = %v, want ErrSessionNotFound", err)
				}
			}},
		{name: "sign in when banned", given: []cmd{ban}, when: signIn("s1", at(2), 0), wantErr: domain.ErrUserNotActive},
		{name: "sign in when deleted", given: []cmd{deleteUser(at(0))}, when: signIn("s1", at(2), 0), wantErr: domain.ErrUserNotActive},
		{name: "sign in with a bad session id", when: signIn("s 1", at(0), 0), wantErr: domain.ErrInvalidArgument},
		{name: "sign in with an empty session id", when: signIn("", at(0), 0), wantErr: domain.ErrInvalidArgument},
		{name: "sign in with a used session id", given: []cmd{signIn("s1", at(0), 0)}, when: signIn("s1", at(1), 0), wantErr: domain.ErrInvalidArgument},
		{name: "sign in that expires at its start", when: func(u *domain.User) ([]domain.Event, error) {
			return u.StartSession(domain.SessionStart{SessionID: "s1", At: at(0), ExpiresAt: at(0)})
		}, wantErr: domain.ErrInvalidArgument},
		{name: "sign in without time", when: signIn("s1", time.Time{}, 0), wantErr: domain.ErrInvalidArgument},
		{name: "sign in with 2FA and no code", given: otpOn, when: signIn("s1", at(0), 0), wantErr: domain.ErrOTPRequired},
		{name: "sign in with 2FA and the enabling code", given: otpOn, when: signIn("s1", at(0), 1000), wantErr: domain.ErrOTPReplayed},
		{name: "sign in with 2FA and an older code", given: otpOn, when: signIn("s1", at(0), 999), wantErr: domain.ErrOTPReplayed},
		{name: "sign in with 2FA and a new code", given: otpOn, when: signIn("s1", at(0), 1001),
			want:  []domain.Event{domain.SessionStarted{SessionID: "s1", At: at(0), ExpiresAt: at(15), OTPStep: 1001}},
			check: func(t *testing.T, u *domain.User) { mustBe(t, "last step", u.LastOTPStep(), int64(1001)) }},
		{name: "sign in twice with one code", given: steps(otpOn, []cmd{signIn("s1", at(0), 1001)}), when: signIn("s2", at(0), 1001), wantErr: domain.ErrOTPReplayed},
		{name: "sign in with a code and 2FA off", when: signIn("s1", at(0), 1001), wantErr: domain.ErrOTPNotEnabled},
		{name: "sign out", given: twoIns, when: signOut("s1"),
			want:  []domain.Event{domain.SessionEnded{SessionID: "s1", Reason: domain.SessionEndLogout}},
			check: func(t *testing.T, u *domain.User) { mustBe(t, "open", fmt.Sprint(u.OpenSessions(at(1))), "[s2]") }},
		{name: "sign out twice", given: []cmd{signIn("s1", at(0), 0), signOut("s1")}, when: signOut("s1"), wantErr: domain.ErrSessionNotFound},
		{name: "sign out of an unknown session", when: signOut("nope"), wantErr: domain.ErrSessionNotFound},
		{name: "failed sign-ins are counted", given: []cmd{failLogin(domain.LoginFailureInvalidPassword, at(0))},
			when: failLogin(domain.LoginFailureInvalidOTP, at(1).In(time.FixedZone("X", 7200))),
			want: []domain.Event{domain.LoginFailed{Reason: domain.LoginFailureInvalidOTP, At: at(1)}},
			check: func(t *testing.T, u *domain.User) {
				n, last := u.FailedLogins()
				mustBe(t, "failures", n, 2)
				mustBe(t, "last failure", last.Equal(at(1)), true)
			}},
		{name: "failed sign-in of a banned user is recorded", given: []cmd{ban}, when: failLogin(domain.LoginFailureNotActive, at(2)),
			want: []domain.Event{domain.LoginFailed{Reason: domain.LoginFailureNotActive, At: at(2)}}},
		{name: "failed sign-in with an unknown reason", when: failLogin("bad_luck", at(0)), wantErr: domain.ErrInvalidArgument},

		// Two-factor authentication.
		{name: "generate OTP secret", when: genOTP("sealed"), want: []domain.Event{domain.OTPSecretGenerated{Ciphertext: []byte("sealed")}},
			check: func(t *testing.T, u *domain.User) {
				mustBe(t, "secret", string(u.OTPSecret()), "sealed")
				mustBe(t, "enabled", u.OTPEnabled(), false)
			}},
		{name: "generate OTP secret again replaces it", given: []cmd{genOTP("one")}, when: genOTP("two"),
			check: func(t *testing.T, u *domain.User) { mustBe(t, "secret", string(u.OTPSecret()), "two") }},
		{name: "generate OTP secret when enabled", given: otpOn, when: genOTP("two"), wantErr: domain.ErrOTPAlreadyEnabled},
		{name: "generate an empty OTP secret", when: genOTP(""), wantErr: domain.ErrInvalidArgument},
		{name: "generate OTP secret when banned", given: []cmd{ban}, when: genOTP("x"), wantErr: domain.ErrUserNotActive},
		{name: "enable OTP", given: []cmd{genOTP("sealed")}, when: enableOTP(1000), want: []domain.Event{domain.OTPEnabled{Step: 1000}},
			check: func(t *testing.T, u *domain.User) {
				mustBe(t, "enabled", u.OTPEnabled(), true)
				mustBe(t, "last step", u.LastOTPStep(), int64(1000))
			}},
		{name: "enable OTP without a secret", when: enableOTP(1000), wantErr: domain.ErrOTPSecretMissing},
		{name: "enable OTP twice", given: otpOn, when: enableOTP(1001), wantErr: domain.ErrOTPAlreadyEnabled},
		{name: "enable OTP with step 0", given: []cmd{genOTP("sealed")}, when: enableOTP(0), wantErr: domain.ErrInvalidArgument},
		{name: "verify OTP", given: otpOn, when: verifyOTP(1001), want: []domain.Event{domain.OTPVerified{Step: 1001}}},
		{name: "verify OTP replayed", given: steps(otpOn, []cmd{verifyOTP(1001)}), when: verifyOTP(1001), wantErr: domain.ErrOTPReplayed},
		{name: "verify OTP when off", when: verifyOTP(1001), wantErr: domain.ErrOTPNotEnabled},
		{name: "disable OTP", given: otpOn, when: disableOTP(1002), want: []domain.Event{domain.OTPDisabled{Step: 1002}},
			check: func(t *testing.T, u *domain.User) {
				mustBe(t, "enabled", u.OTPEnabled(), false)
				mustBe(t, "secret", u.OTPSecret() == nil, true)
			}},
		{name: "disable OTP replayed", given: otpOn, when: disableOTP(1000), wantErr: domain.ErrOTPReplayed},
		{name: "disable OTP when off", when: disableOTP(1001), wantErr: domain.ErrOTPNotEnabled},
		{name: "sign in after disabling OTP needs no code", given: steps(otpOn, []cmd{disableOTP(1001)}), when: signIn("s1", at(0), 0)},
		{name: "re-enable OTP with a used step", given: steps(otpOn, []cmd{disableOTP(1001), genOTP("new")}), when: enableOTP(1001), wantErr: domain.ErrOTPReplayed},

		// Role, state, deletion.
		{name: "change role", when: changeRole(domain.RoleAdmin), want: []domain.Event{domain.RoleChanged{From: domain.RoleMember, To: domain.RoleAdmin}}},
		{name: "change role of a banned user", given: []cmd{ban}, when: changeRole(domain.RoleAuditor),
			want: []domain.Event{domain.RoleChanged{From: domain.RoleMember, To: domain.RoleAuditor}}},
		{name: "change role to the same", when: changeRole(domain.RoleMember), wantErr: domain.ErrUnchanged},
		{name: "change role to no role", when: changeRole(domain.Role{}), wantErr: domain.ErrRoleInvalid},
		{name: "ban ends every session", given: twoIns, when: ban,
			want: []domain.Event{domain.UserStateChanged{From: domain.StateActive, To: domain.StateBanned, Reason: "fraud"},
				domain.SessionEnded{SessionID: "s1", Reason: domain.SessionEndStateChanged},
				domain.SessionEnded{SessionID: "s2", Reason: domain.SessionEndStateChanged}},
			check: func(t *testing.T, u *domain.User) { mustBe(t, "active", u.IsActive(), false) }},
		{name: "ban twice", given: []cmd{ban}, when: ban, wantErr: domain.ErrUnchanged},
		{name: "change to no state", when: changeState(domain.State{}, "", at(0)), wantErr: domain.ErrStateInvalid},
		{name: "change state with a long reason", when: changeState(domain.StateBanned, strings.Repeat("r", 501), at(0)), wantErr: domain.ErrInvalidArgument},
		{name: "unlock clears failed sign-ins",
			given: []cmd{failLogin(domain.LoginFailureInvalidPassword, at(0)), changeState(domain.StateLocked, "too many failures", at(0))},
			when:  changeState(domain.StateActive, "", at(1)),
			want:  []domain.Event{domain.UserStateChanged{From: domain.StateLocked, To: domain.StateActive}},
			check: func(t *testing.T, u *domain.User) {
				n, _ := u.FailedLogins()
				mustBe(t, "failures", n, 0)
				mustBe(t, "active", u.IsActive(), true)
			}},
		{name: "restore a deleted user", given: []cmd{deleteUser(at(0))}, when: changeState(domain.StateActive, "asked support", at(1)),
			want: []domain.Event{domain.UserStateChanged{From: domain.StateDeleted, To: domain.StateActive, Reason: "asked support"}}},
		{name: "delete ends every session", given: twoIns, when: deleteUser(at(1)),
			want: []domain.Event{domain.UserDeleted{},
				domain.SessionEnded{SessionID: "s1", Reason: domain.SessionEndAccountDeleted},
				domain.SessionEnded{SessionID: "s2", Reason: domain.SessionEndAccountDeleted}},
			check: func(t *testing.T, u *domain.User) { mustBe(t, "state", u.State(), domain.StateDeleted) }},
		{name: "delete twice", given: []cmd{deleteUser(at(0))}, when: deleteUser(at(1)), wantErr: domain.ErrUserNotActive},
		{name: "delete without time", when: deleteUser(time.Time{}), wantErr: domain.ErrInvalidArgument},
	})
}

func mustBe[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}
