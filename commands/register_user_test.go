package commands_test

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/idlog/idlog/auth"
	"github.com/idlog/idlog/commands"
	"github.com/idlog/idlog/domain"
)

func TestRegisterUser(t *testing.T) {
	t.Parallel()
	e := newEnv(t, commands.Config{})
	r := e.register(t, "  Alice@Example.COM ", "Alice")
	if r.Account.Email != "alice@example.com" || r.Account.Username != "alice" || r.Account.Role != "member" || r.Account.State != "active" || r.Account.EmailVerified {
		t.Errorf("account = %+v", r.Account)
	}
	if r.Position == 0 {
		t.Error("no position to wait for")
	}
	events := e.events(t, r.Account.UID)
	if got := types(events); !slices.Equal(got, []string{"UserRegistered", "WalletCredited", "EmailVerificationRequested"}) {
		t.Errorf("events = %v", got)
	}
	// The actor of a sign-up is the new user.
	if md := events[0].Metadata; md.ActorUID != r.Account.UID || md.ActorRole != "member" {
		t.Errorf("metadata = %+v", md)
	}
	token := e.mail.last(t, commands.NotifyEmailConfirmation, "alice@example.com")
	if !strings.HasPrefix(token, r.Account.UID+".") {
		t.Errorf("token %q does not name the user", token)
	}
	for _, ev := range events {
		if strings.Contains(string(ev.Data), token) || strings.Contains(string(ev.Data), strongPassword) {
			t.Errorf("%s holds the token or the password: %s", ev.Type, ev.Data)
		}
	}
}

func TestRegisterUserRefusesBadInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t, commands.Config{})
	e.register(t, "taken@example.com", "taken")
	tests := []struct {
		name string
		cmd  commands.RegisterUser
		want error
	}{
		{"bad email", commands.RegisterUser{Email: "nope", Password: strongPassword}, domain.ErrEmailInvalid},
		{"bad username", commands.RegisterUser{Email: "a@example.com", Username: "x!", Password: strongPassword}, domain.ErrUsernameInvalid},
		{"no password", commands.RegisterUser{Email: "a@example.com"}, commands.ErrMissingPassword},
		{"weak password", commands.RegisterUser{Email: "a@example.com", Password: "password1"}, auth.ErrWeakPassword},
		{"bad refid", commands.RegisterUser{Email: "a@example.com", Password: strongPassword, RefID: "ID12"}, domain.ErrRefIDInvalid},
		{"unknown referrer", commands.RegisterUser{Email: "a@example.com", Password: strongPassword, RefID: "ID0000000000"}, commands.ErrReferrerNotFound},
		{"email taken", commands.RegisterUser{Email: "TAKEN@example.com", Password: strongPassword}, commands.ErrEmailTaken},
		{"username taken", commands.RegisterUser{Email: "b@example.com", Username: "Taken", Password: strongPassword}, commands.ErrUsernameTaken},
	}
	for _, tt := range tests {
		_, err := e.app.Commands.RegisterUser.Handle(t.Context(), tt.cmd)
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: error %v, want %v", tt.name, err, tt.want)
		}
	}
}

// Fifty sign-ups of one address at once: exactly one wins, whatever the interleaving.
func TestRegisterUserConcurrently(t *testing.T) {
	t.Parallel()
	e := newEnv(t, commands.Config{})
	for _, field := range []string{"email", "username"} {
		var (
			wg       sync.WaitGroup
			won      []string
			mu       sync.Mutex
			failures = map[string]int{}
		)
		for i := range 50 {
			wg.Go(func() {
				cmd := commands.RegisterUser{Email: "race@example.com", Username: "racer" + string(rune('a'+i%26)) + string(rune('a'+i/26)), Password: strongPassword}
				if field == "username" {
					cmd.Email, cmd.Username = "racer"+string(rune('a'+i%26))+string(rune('a'+i/26))+"@example.com", "racer"
				}
				r, err := e.app.Commands.RegisterUser.Handle(t.Context(), cmd)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					won = append(won, r.Account.UID)
				case errors.Is(err, commands.ErrEmailTaken) && field == "email", errors.Is(err, commands.ErrUsernameTaken) && field == "username":
					failures["taken"]++
				default:
					failures[err.Error()]++
				}
			})
		}
		wg.Wait()
		if len(won) != 1 || failures["taken"] != 49 || len(failures) != 1 {
			t.Errorf("%s: %d won, failures %v; want 1 and 49 taken", field, len(won), failures)
		}
	}
}

func TestRegisterUserIdempotent(t *testing.T) {
	t.Parallel()
	e := newEnv(t, commands.Config{})
	cmd := commands.RegisterUser{Meta: commands.Meta{IdempotencyKey: "k-1"}, Email: "idem@example.com", Password: strongPassword}
	first, err := e.app.Commands.RegisterUser.Handle(t.Context(), cmd)
	if err != nil || first.Replayed {
		t.Fatalf("first = %+v, %v", first, err)
	}
	mails := e.mail.count()
	again, err := e.app.Commands.RegisterUser.Handle(t.Context(), cmd)
	if err != nil || !again.Replayed || again.Account.UID != first.Account.UID || again.Position != 0 {
		t.Fatalf("retry = %+v, %v; want a replay of %s", again, err, first.Account.UID)
	}
	if n := len(e.events(t, first.Account.UID)); n != 3 {
		t.Errorf("%d events after the retry, want 3", n)
	}
	if e.mail.count() != mails {
		t.Error("the retry sent another code")
	}
	// The same key for another address is not a retry.
	cmd.Email = "other@example.com"
	if _, err := e.app.Commands.RegisterUser.Handle(t.Context(), cmd); !errors.Is(err, commands.ErrIdempotencyKeyReused) {
		t.Errorf("key reused for another address: %v", err)
	}
	// Concurrent retries: one appends, the others replay it.
	cmd = commands.RegisterUser{Meta: commands.Meta{IdempotencyKey: "k-2"}, Email: "burst@example.com", Password: strongPassword}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		uids = map[string]int{}
		errs []error
	)
	for range 10 {
		wg.Go(func() {
			r, err := e.app.Commands.RegisterUser.Handle(t.Context(), cmd)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			uids[r.Account.UID]++
		})
	}
	wg.Wait()
	if len(errs) > 0 || len(uids) != 1 {
		t.Errorf("concurrent retries: uids %v, errors %v; want one uid", uids, errs)
	}
}
