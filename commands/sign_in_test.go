package commands_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/idlog/idlog/auth"
	"github.com/idlog/idlog/commands"
	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/eventstore"
)

func TestSignIn(t *testing.T) {
	t.Parallel()
	e := newEnv(t, commands.Config{})
	r := e.register(t, "sign@example.com", "signer")
	for _, login := range []string{"sign@example.com", " SIGN@example.com", "signer", "Signer"} {
		s := e.signIn(t, login, "")
		claims, err := e.signer.Verify(s.Token)
		if err != nil {
			t.Fatalf("token of %s: %v", login, err)
		}
		if claims.UserID != r.Account.UID || claims.SessionID != s.SessionID || claims.Role != "member" || claims.Level != 0 || !claims.ExpiresAt.Equal(s.ExpiresAt) {
			t.Errorf("claims %+v for %+v", claims, s)
		}
		if ok, err := e.isOpen(t, r.Account.UID, s.SessionID); !ok || err != nil {
			t.Errorf("session %s open = %v, %v", s.SessionID, ok, err)
		}
	}
	for _, cmd := range []commands.SignIn{
		{Login: "sign@example.com", Password: "wrong password!"},
		{Login: "nobody@example.com", Password: strongPassword},
		{Login: "nobody", Password: strongPassword},
		{Login: "not a login", Password: strongPassword},
		{Login: "sign@example.com"},
	} {
		if _, err := e.app.Commands.SignIn.Handle(t.Context(), cmd); !errors.Is(err, commands.ErrInvalidCredentials) {
			t.Errorf("sign-in %q/%q: %v, want ErrInvalidCredentials", cmd.Login, cmd.Password, err)
		}
	}
	got := types(e.events(t, r.Account.UID))
	want := []string{"UserRegistered", "WalletCredited", "EmailVerificationRequested", "SessionStarted", "SessionStarted", "SessionStarted", "SessionStarted", "LoginFailed"}
	if !slices.Equal(got, want) {
		t.Errorf("events %v, want %v", got, want)
	}
}

func TestSignInWithOTP(t *testing.T) {
	t.Parallel()
	e := newEnv(t, commands.Config{})
	uid := e.register(t, "otp@example.com", "").Account.UID
	secret := e.enableOTP(t, uid)
	step := e.clock.Step()

	_, err := e.app.Commands.SignIn.Handle(t.Context(), commands.SignIn{Login: "otp@example.com", Password: strongPassword})
	wantErr(t, "no code", err, domain.ErrOTPRequired)
	_, err = e.app.Commands.SignIn.Handle(t.Context(), commands.SignIn{Login: "otp@example.com", Password: strongPassword, OTPCode: "000000x"})
	wantErr(t, "malformed code", err, auth.ErrOTPCodeInvalid)
	// The code that enabled two-factor authentication was spent.
	_, err = e.app.Commands.SignIn.Handle(t.Context(), commands.SignIn{Login: "otp@example.com", Password: strongPassword, OTPCode: e.clock.code(t, secret, step)})
	wantErr(t, "replayed code", err, domain.ErrOTPReplayed)
	// The next step's code works once (one step of drift is tolerated).
	next := e.clock.code(t, secret, step+1)
	e.signIn(t, "otp@example.com", next)
	_, err = e.app.Commands.SignIn.Handle(t.Context(), commands.SignIn{Login: "otp@example.com", Password: strongPassword, OTPCode: next})
	wantErr(t, "code used twice", err, domain.ErrOTPReplayed)

	var reasons []string
	for _, ev := range e.events(t, uid) {
		if ev.Type == "LoginFailed" {
			reasons = append(reasons, string(ev.Data))
		}
	}
	if len(reasons) != 4 {
		t.Errorf("LoginFailed events: %v, want 4", reasons)
	}
}

func TestSignInNotActive(t *testing.T) {
	t.Parallel()
	e := newEnv(t, commands.Config{})
	uid := e.register(t, "gone@example.com", "").Account.UID
	s := e.signIn(t, "gone@example.com", "")
	if _, err := e.app.Commands.DeleteAccount.Handle(t.Context(), commands.DeleteAccount{UID: domain.UserID(uid), Password: "wrong password!"}); !errors.Is(err, commands.ErrWrongPassword) {
		t.Fatalf("delete with a wrong password: %v", err)
	}
	if _, err := e.app.Commands.DeleteAccount.Handle(t.Context(), commands.DeleteAccount{UID: domain.UserID(uid), Password: strongPassword}); err != nil {
		t.Fatal(err)
	}
	if ok, _ := e.isOpen(t, uid, s.SessionID); ok {
		t.Error("session still open after the account was deleted")
	}
	// The right password learns the state; a wrong one learns nothing.
	_, err := e.app.Commands.SignIn.Handle(t.Context(), commands.SignIn{Login: "gone@example.com", Password: strongPassword})
	wantErr(t, "deleted account", err, domain.ErrUserNotActive)
	_, err = e.app.Commands.SignIn.Handle(t.Context(), commands.SignIn{Login: "gone@example.com", Password: "wrong password!"})
	wantErr(t, "deleted account, wrong password", err, commands.ErrInvalidCredentials)
}

func TestSignInThrottlesAccount(t *testing.T) {
	t.Parallel()
	e := newEnv(t, commands.Config{SignIn: commands.SignInConfig{MaxFailures: 3, Lockout: time.Minute, AddressMaxFailures: -1}})
	uid := e.register(t, "lock@example.com", "").Account.UID
	bad := commands.SignIn{Login: "lock@example.com", Password: "wrong password!"}
	for range 3 {
		_, err := e.app.Commands.SignIn.Handle(t.Context(), bad)
		wantErr(t, "wrong password", err, commands.ErrInvalidCredentials)
	}
	before := len(e.events(t, uid))
	_, err := e.app.Commands.SignIn.Handle(t.Context(), commands.SignIn{Login: "lock@example.com", Password: strongPassword})
	var throttled *commands.ThrottledError
	if !errors.As(err, &throttled) || throttled.Scope != commands.ThrottleAccount || throttled.RetryAfter != time.Minute {
		t.Fatalf("4th sign-in: %v, want the account throttled for 1m", err)
	}
	if after := len(e.events(t, uid)); after != before {
		t.Errorf("a throttled sign-in appended %d events", after-before)
	}
	e.clock.Advance(time.Minute)
	e.signIn(t, "lock@example.com", "")
	// The success cleared the count.
	_, err = e.app.Commands.SignIn.Handle(t.Context(), bad)
	wantErr(t, "after success", err, commands.ErrInvalidCredentials)
	e.signIn(t, "lock@example.com", "")
}

func TestSignInThrottlesAddress(t *testing.T) {
	t.Parallel()
	e := newEnv(t, commands.Config{SignIn: commands.SignInConfig{MaxFailures: -1, AddressMaxFailures: 4, AddressWindow: time.Minute}})
	e.register(t, "addr@example.com", "")
	from := func(ip, login, pw string) error {
		_, err := e.app.Commands.SignIn.Handle(t.Context(), commands.SignIn{Meta: commands.Meta{IP: ip}, Login: login, Password: pw})
		return err
	}
	// Unknown logins count too: they are how accounts are guessed.
	for i, login := range []string{"a@example.com", "b@example.com", "addr@example.com", "c"} {
		if err := from("192.0.2.1", login, "wrong password!"); !errors.Is(err, commands.ErrInvalidCredentials) {
			t.Fatalf("failure %d: %v", i, err)
		}
	}
	err := from("192.0.2.1", "addr@example.com", strongPassword)
	var throttled *commands.ThrottledError
	if !errors.As(err, &throttled) || throttled.RetryAfter != time.Minute {
		t.Fatalf("5th sign-in from the address: %v, want it throttled for the window", err)
	}
	if err := from("192.0.2.2", "addr@example.com", strongPassword); err != nil {
		t.Errorf("another address is throttled too: %v", err)
	}
	e.clock.Advance(time.Minute)
	if err := from("192.0.2.1", "addr@example.com", strongPassword); err != nil {
		t.Errorf("after the window: %v", err)
	}
}

func TestSignInIdempotent(t *testing.T) {
	t.Parallel()
	e := newEnv(t, commands.Config{})
	uid := e.register(t, "retry@example.com", "").Account.UID
	cmd := commands.SignIn{Meta: commands.Meta{IdempotencyKey: "sign-1"}, Login: "retry@example.com", Password: strongPassword}
	first, err := e.app.Commands.SignIn.Handle(t.Context(), cmd)
	if err != nil {
		t.Fatal(err)
	}
	n := len(e.events(t, uid))
	again, err := e.app.Commands.SignIn.Handle(t.Context(), cmd)
	if err != nil || !again.Replayed || again.SessionID != first.SessionID {
		t.Fatalf("retry = %+v, %v; want the session %s again", again, err, first.SessionID)
	}
	if len(e.events(t, uid)) != n {
		t.Error("the retry appended")
	}
	// A retry does not skip the password.
	cmd.Password = "wrong password!"
	_, err = e.app.Commands.SignIn.Handle(t.Context(), cmd)
	wantErr(t, "retry with a wrong password", err, commands.ErrInvalidCredentials)
}

// An administrator turned the user's sign-in off: the right password learns it, and open
// sessions are no longer accepted even if the event that turned it off ended none.
func TestSignInLoginDisabled(t *testing.T) {
	t.Parallel()
	e := newEnv(t, commands.Config{})
	uid := e.register(t, "off@example.com", "").Account.UID
	s := e.signIn(t, "off@example.com", "")
	n := len(e.events(t, uid))
	if _, err := e.store.Append(t.Context(), eventstore.Append{
		Stream: domain.UserStreamPrefix + uid, Expected: eventstore.Exactly(uint64(n)),
		Events: []eventstore.NewEvent{{Type: domain.LoginDisabled{}.EventType(), SchemaVersion: 1, Data: []byte(`{}`)}},
	}); err != nil {
		t.Fatal(err)
	}
	if ok, _ := e.isOpen(t, uid, s.SessionID); ok {
		t.Error("session open while sign-in is disabled")
	}
	_, err := e.app.Commands.SignIn.Handle(t.Context(), commands.SignIn{Login: "off@example.com", Password: strongPassword})
	wantErr(t, "sign-in disabled", err, domain.ErrLoginDisabled)
	if got := types(e.events(t, uid)); got[len(got)-1] != "LoginFailed" {
		t.Errorf("last event %s, want the failure recorded", got[len(got)-1])
	}
}
