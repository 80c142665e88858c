package commands_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idlog/idlog/auth"
	"github.com/idlog/idlog/commands"
	"github.com/idlog/idlog/domain"
)

func TestVerifyEmail(t *testing.T) {
	t.Parallel()
	e := newEnv(t, commands.Config{Codes: commands.CodesConfig{EmailTokenTTL: time.Hour}})
	uid := e.register(t, "verify@example.com", "").Account.UID
	first := e.mail.last(t, commands.NotifyEmailConfirmation, "verify@example.com")

	// Asking again replaces the token; an unknown address gets the same answer and no mail.
	for _, addr := range []string{"verify@example.com", "unknown@example.com"} {
		r, err := e.app.Commands.RequestEmailVerification.Handle(t.Context(), commands.RequestEmailVerification{Email: addr})
		if err != nil || r.Position != 0 || r.Account.UID != "" || r.Replayed {
			t.Fatalf("request for %s = %+v, %v; want an empty result", addr, r, err)
		}
	}
	second := e.mail.last(t, commands.NotifyEmailConfirmation, "verify@example.com")
	if e.mail.count() != 2 || second == first {
		t.Fatalf("%d mails, want a new token to verify@ only", e.mail.count())
	}
	for _, tok := range []string{first, "", "ID0000000000.abc", "garbage", strings.Repeat("x", 200)} {
		_, err := e.app.Commands.VerifyEmail.Handle(t.Context(), commands.VerifyEmail{Token: tok})
		wantErr(t, "token "+tok, err, domain.ErrTokenInvalid)
	}
	e.clock.Advance(time.Hour)
	_, err := e.app.Commands.VerifyEmail.Handle(t.Context(), commands.VerifyEmail{Token: second})
	wantErr(t, "expired token", err, domain.ErrTokenExpired)
	e.clock.Advance(-time.Minute)
	r, err := e.app.Commands.VerifyEmail.Handle(t.Context(), commands.VerifyEmail{Token: second})
	if err != nil || !r.Account.EmailVerified {
		t.Fatalf("verify = %+v, %v", r, err)
	}
	if s := e.signIn(t, "verify@example.com", ""); s.Account.UID != uid {
		t.Fatal("signed in as someone else")
	}
	claims, _ := e.signer.Verify(e.signIn(t, "verify@example.com", "").Token)
	if claims.Level != 1 {
		t.Errorf("level after verification = %d, want 1", claims.Level)
	}
	_, err = e.app.Commands.VerifyEmail.Handle(t.Context(), commands.VerifyEmail{Token: second})
	wantErr(t, "verify twice", err, domain.ErrEmailAlreadyVerified)
}

func TestResetPassword(t *testing.T) {
	t.Parallel()
	e := newEnv(t, commands.Config{})
	uid := e.register(t, "reset@example.com", "").Account.UID
	s := e.signIn(t, "reset@example.com", "")
	if _, err := e.app.Commands.RequestPasswordReset.Handle(t.Context(), commands.RequestPasswordReset{Email: "reset@example.com"}); err != nil {
		t.Fatal(err)
	}
	token := e.mail.last(t, commands.NotifyPasswordReset, "reset@example.com")
	const newPassword = "a brand new passphrase"
	for _, tt := range []struct {
		cmd  commands.ResetPassword
		want error
	}{
		{commands.ResetPassword{Token: token, Password: newPassword, ConfirmPassword: "other"}, commands.ErrPasswordMismatch},
		{commands.ResetPassword{Token: token, Password: "short", ConfirmPassword: "short"}, auth.ErrWeakPassword},
		{commands.ResetPassword{Token: uid + ".nope", Password: newPassword, ConfirmPassword: newPassword}, domain.ErrTokenInvalid},
	} {
		_, err := e.app.Commands.ResetPassword.Handle(t.Context(), tt.cmd)
		wantErr(t, "reset", err, tt.want)
	}
	if _, err := e.app.Commands.ResetPassword.Handle(t.Context(), commands.ResetPassword{Token: token, Password: newPassword, ConfirmPassword: newPassword}); err != nil {
		t.Fatal(err)
	}
	if ok, _ := e.isOpen(t, uid, s.SessionID); ok {
		t.Error("the session survived the reset")
	}
	_, err := e.app.Commands.SignIn.Handle(t.Context(), commands.SignIn{Login: "reset@example.com", Password: strongPassword})
	wantErr(t, "old password", err, commands.ErrInvalidCredentials)
	if _, err := e.app.Commands.SignIn.Handle(t.Context(), commands.SignIn{Login: "reset@example.com", Password: newPassword}); err != nil {
		t.Errorf("new password: %v", err)
	}
	_, err = e.app.Commands.ResetPassword.Handle(t.Context(), commands.ResetPassword{Token: token, Password: newPassword + "!", ConfirmPassword: newPassword + "!"})
	wantErr(t, "token used twice", err, domain.ErrTokenInvalid)
}

func TestChangePasswordKeepsTheCallersSession(t *testing.T) {
	t.Parallel()
	e := newEnv(t, commands.Config{})
	uid := domain.UserID(e.register(t, "change@example.com", "").Account.UID)
	mine, other := e.signIn(t, "change@example.com", ""), e.signIn(t, "change@example.com", "")
	const newPassword = "another long passphrase"
	for _, tt := range []struct {
		cmd  commands.ChangePassword
		want error
	}{
		{commands.ChangePassword{OldPassword: "wrong password!", NewPassword: newPassword, ConfirmPassword: newPassword}, commands.ErrWrongPassword},
		{commands.ChangePassword{OldPassword: strongPassword, NewPassword: strongPassword, ConfirmPassword: strongPassword}, commands.ErrSamePassword},
		{commands.ChangePassword{OldPassword: strongPassword, NewPassword: newPassword, ConfirmPassword: "x"}, commands.ErrPasswordMismatch},
	} {
		tt.cmd.UID, tt.cmd.SessionID = uid, mine.SessionID
		_, err := e.app.Commands.ChangePassword.Handle(t.Context(), tt.cmd)
		wantErr(t, "change password", err, tt.want)
	}
	if _, err := e.app.Commands.ChangePassword.Handle(t.Context(), commands.ChangePassword{UID: uid, SessionID: mine.SessionID, OldPassword: strongPassword, NewPassword: newPassword, ConfirmPassword: newPassword}); err != nil {
		t.Fatal(err)
	}
	for sid, want := range map[string]bool{mine.SessionID: true, other.SessionID: false} {
		if ok, _ := e.isOpen(t, string(uid), sid); ok != want {
			t.Errorf("session %s open = %v, want %v", sid, ok, want)
		}
	}
}

func TestChangeEmailAndUsername(t *testing.T) {
	t.Parallel()
	e := newEnv(t, commands.Config{})
	a := domain.UserID(e.register(t, "a@example.com", "alpha").Account.UID)
	e.register(t, "b@example.com", "beta")

	_, err := e.app.Commands.ChangeEmail.Handle(t.Context(), commands.ChangeEmail{UID: a, Email: "B@example.com", Password: strongPassword})
	wantErr(t, "taken email", err, commands.ErrEmailTaken)
	_, err = e.app.Commands.ChangeEmail.Handle(t.Context(), commands.ChangeEmail{UID: a, Email: "c@example.com", Password: "wrong password!"})
	wantErr(t, "wrong password", err, commands.ErrWrongPassword)
	r, err := e.app.Commands.ChangeEmail.Handle(t.Context(), commands.ChangeEmail{UID: a, Email: "C@example.com", Password: strongPassword})
	if err != nil || r.Account.Email != "c@example.com" || r.Account.EmailVerified {
		t.Fatalf("change email = %+v, %v", r, err)
	}
	e.mail.last(t, commands.NotifyEmailConfirmation, "c@example.com")
	// The old address is free again, the new one taken.
	e.register(t, "a@example.com", "")
	_, err = e.app.Commands.RegisterUser.Handle(t.Context(), commands.RegisterUser{Email: "c@example.com", Password: strongPassword})
	wantErr(t, "register the new address", err, commands.ErrEmailTaken)
	e.signIn(t, "c@example.com", "")

	_, err = e.app.Commands.ChangeUsername.Handle(t.Context(), commands.ChangeUsername{UID: a, Username: "BETA", Password: strongPassword})
	wantErr(t, "taken username", err, commands.ErrUsernameTaken)
	_, err = e.app.Commands.ChangeUsername.Handle(t.Context(), commands.ChangeUsername{UID: a, Username: "alpha", Password: strongPassword})
	wantErr(t, "same username", err, domain.ErrUnchanged)
	if _, err := e.app.Commands.ChangeUsername.Handle(t.Context(), commands.ChangeUsername{UID: a, Username: "gamma", Password: strongPassword}); err != nil {
		t.Fatal(err)
	}
	e.signIn(t, "gamma", "")
	e.register(t, "d@example.com", "alpha")
}

// Writers racing on one stream all land: a conflict reloads and decides again.
func TestConcurrentChangesRetry(t *testing.T) {
	t.Parallel()
	e := newEnv(t, commands.Config{Streams: commands.StreamsConfig{MaxAttempts: 50}})
	uid := domain.UserID(e.register(t, "busy@example.com", "").Account.UID)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Go(func() {
			_, err := e.app.Commands.UpdateUserData.Handle(t.Context(), commands.UpdateUserData{UID: uid, Data: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if n := len(e.events(t, string(uid))); n != 23 {
		t.Errorf("%d events, want 3 (sign-up) + 20", n)
	}

	// With one attempt only, some lose, as a typed conflict.
	e = newEnv(t, commands.Config{Streams: commands.StreamsConfig{MaxAttempts: 1, CacheSize: -1}})
	uid = domain.UserID(e.register(t, "busy@example.com", "").Account.UID)
	var conflicts, other int
	var mu sync.Mutex
	for round := 0; round < 20 && conflicts == 0; round++ {
		for i := range 10 {
			wg.Go(func() {
				_, err := e.app.Commands.UpdateUserData.Handle(t.Context(), commands.UpdateUserData{UID: uid, Data: json.RawMessage(fmt.Sprintf(`{"round":%d,"i":%d}`, round, i))})
				mu.Lock()
				defer mu.Unlock()
				var ce *commands.ConflictError
				switch {
				case errors.As(err, &ce) && errors.Is(err, commands.ErrConflict) && ce.Attempts == 1:
					conflicts++
				case err != nil:
					other++
				}
			})
		}
		wg.Wait()
	}
	if conflicts == 0 || other != 0 {
		t.Errorf("%d conflicts, %d other errors; want conflicts only", conflicts, other)
	}
}

func TestOTPLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t, commands.Config{})
	uid := domain.UserID(e.register(t, "two@example.com", "").Account.UID)
	_, err := e.app.Commands.EnableOTP.Handle(t.Context(), commands.EnableOTP{UID: uid, Code: "123456"})
	wantErr(t, "enable before generating", err, domain.ErrOTPSecretMissing)
	_, err = e.app.Commands.VerifyOTP.Handle(t.Context(), commands.VerifyOTP{UID: uid, Code: "123456"})
	wantErr(t, "verify while off", err, domain.ErrOTPNotEnabled)

	secret := e.enableOTP(t, string(uid))
	_, err = e.app.Commands.GenerateOTPSecret.Handle(t.Context(), commands.GenerateOTPSecret{UID: uid})
	wantErr(t, "generate while on", err, domain.ErrOTPAlreadyEnabled)
	step := e.clock.Step()
	_, err = e.app.Commands.VerifyOTP.Handle(t.Context(), commands.VerifyOTP{UID: uid, Code: e.clock.code(t, secret, step)})
	wantErr(t, "verify the enabling code", err, domain.ErrOTPReplayed)
	_, err = e.app.Commands.VerifyOTP.Handle(t.Context(), commands.VerifyOTP{UID: uid, Code: e.clock.code(t, secret, step+5)})
	wantErr(t, "verify a far code", err, auth.ErrOTPCodeInvalid)
	if _, err := e.app.Commands.VerifyOTP.Handle(t.Context(), commands.VerifyOTP{UID: uid, Code: e.clock.code(t, secret, step+1)}); err != nil {
		t.Fatal(err)
	}
	_, err = e.app.Commands.DeleteAccount.Handle(t.Context(), commands.DeleteAccount{UID: uid, Password: strongPassword})
	wantErr(t, "delete without code", err, domain.ErrOTPRequired)
	e.clock.Advance(30 * time.Second)
	if _, err := e.app.Commands.DisableOTP.Handle(t.Context(), commands.DisableOTP{UID: uid, Code: e.clock.code(t, secret, step+2)}); err != nil {
		t.Fatal(err)
	}
	e.signIn(t, "two@example.com", "")

	// The secret is stored sealed only.
	for _, ev := range e.events(t, string(uid)) {
		if strings.Contains(string(ev.Data), secret) {
			t.Errorf("%s holds the TOTP secret", ev.Type)
		}
	}
	got := types(e.events(t, string(uid)))
	// The replayed code and the far code were recorded as wrong (SecretCheckFailed).
	want := []string{"UserRegistered", "WalletCredited", "EmailVerificationRequested", "OTPSecretGenerated", "OTPEnabled",
		"SecretCheckFailed", "SecretCheckFailed", "OTPVerified", "OTPDisabled", "SessionStarted"}
	if !slices.Equal(got, want) {
		t.Errorf("events %v, want %v", got, want)
	}
}

func TestSignOut(t *testing.T) {
	t.Parallel()
	e := newEnv(t, commands.Config{})
	uid := domain.UserID(e.register(t, "out@example.com", "").Account.UID)
	s := e.signIn(t, "out@example.com", "")
	if _, err := e.app.Commands.SignOut.Handle(t.Context(), commands.SignOut{UID: uid, SessionID: s.SessionID}); err != nil {
		t.Fatal(err)
	}
	if ok, _ := e.isOpen(t, string(uid), s.SessionID); ok {
		t.Error("open after sign-out")
	}
	_, err := e.app.Commands.SignOut.Handle(t.Context(), commands.SignOut{UID: uid, SessionID: s.SessionID})
	wantErr(t, "sign out twice", err, domain.ErrSessionNotFound)
	for _, id := range []string{"nope", "ID0000000000"} {
		if ok, err := e.isOpen(t, id, s.SessionID); ok || err != nil {
			t.Errorf("IsOpen(%s) = %v, %v", id, ok, err)
		}
	}
}
