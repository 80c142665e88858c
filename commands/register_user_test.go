package commands_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/idlog/idlog/auth"
	"github.com/idlog/idlog/commands"
	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/eventstore/sqlite"
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

// drawingStore is a store that draws new users' ids itself, as personaldata.Store does on
// PostgreSQL (it stores their data keys ahead), and records the ids given back.
type drawingStore struct {
	*sqlite.Store
	mu    sync.Mutex
	drawn []domain.UserID
	back  []domain.UserID
}

func (d *drawingStore) NewUserID(context.Context) domain.UserID {
	d.mu.Lock()
	defer d.mu.Unlock()
	uid := domain.UserID(fmt.Sprintf("ID%010X", 0xD0000+len(d.drawn)))
	d.drawn = append(d.drawn, uid)
	return uid
}

func (d *drawingStore) UnusedUserID(uid domain.UserID) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.back = append(d.back, uid)
}

// A sign-up takes its id from a store that draws them, and gives it back when it is refused with
// nothing stored (a username taken in the append); an id whose sign-up was stored is kept.
func TestRegisterUserDrawsItsIDFromTheStore(t *testing.T) {
	t.Parallel()
	d := &drawingStore{}
	e := newEnvOver(t, commands.Config{}, func(s *sqlite.Store) eventstore.Store { d.Store = s; return d })
	r := e.register(t, "drawn@example.com", "drawn")
	if len(d.drawn) != 1 || r.Account.UID != string(d.drawn[0]) || len(d.back) != 0 {
		t.Fatalf("registered %s; drawn %v, given back %v", r.Account.UID, d.drawn, d.back)
	}
	_, err := e.app.Commands.RegisterUser.Handle(t.Context(), commands.RegisterUser{Email: "other@example.com", Username: "Drawn", Password: strongPassword})
	if !errors.Is(err, commands.ErrUsernameTaken) {
		t.Fatalf("a taken username: %v, want ErrUsernameTaken", err)
	}
	if len(d.drawn) != 2 || !slices.Equal(d.back, d.drawn[1:]) {
		t.Fatalf("after a refused sign-up: drawn %v, given back %v, want the second given back", d.drawn, d.back)
	}
	for ev, err := range e.store.ReadStream(t.Context(), d.drawn[1].Stream(), 0) {
		t.Fatalf("the refused sign-up's stream holds %v (%v)", ev.Type, err)
	}
}
