package commands_test

import (
	"context"
	"iter"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/idlog/idlog/commands"
	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/eventstore/sqlite"
)

// streamReads counts the reads of user streams through it.
type streamReads struct {
	*sqlite.Store
	reads atomic.Int64
}

func (s *streamReads) ReadStream(ctx context.Context, stream string, after uint64) iter.Seq2[eventstore.Event, error] {
	if strings.HasPrefix(stream, domain.UserStreamPrefix) {
		s.reads.Add(1)
	}
	return s.Store.ReadStream(ctx, stream, after)
}

// A sign-in reads the user's stream once: the password check reads it, and the append of the
// session starts from that user, cached, without reading it again (the append's expected version
// proves it current). It read it twice before.
func TestSignInReadsTheUserOnce(t *testing.T) {
	t.Parallel()
	var counted *streamReads
	e := newEnvOver(t, commands.Config{}, func(s *sqlite.Store) eventstore.Store {
		counted = &streamReads{Store: s}
		return counted
	})
	e.register(t, "once@example.com", "")
	e.signIn(t, "once@example.com", "")
	before := counted.reads.Load()
	e.signIn(t, "once@example.com", "")
	if n := counted.reads.Load() - before; n != 1 {
		t.Errorf("a sign-in read the user's stream %d times, want 1", n)
	}
}

// A command that starts from a stale cached user never commits what it decided on it. Another
// replica spent most of the wallet after this one cached the user: this one's spend, affordable
// by the cached balance, is refused by the stored one. Another replica banned the user: this
// one's sign-in with the right password is refused, and no session starts. On SQLite (two
// applications on one store) and PostgreSQL (two stores on one database).
func TestUpdateFromAStaleCacheDecidesOnTheStream(t *testing.T) {
	t.Parallel()
	cfg := commands.Config{Wallet: commands.WalletConfig{SignupBonus: 100}}
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, cfg)
		staleCacheRefused(t, e.app, e.replica(t), e.store)
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		apps, store := postgresReplicas(t, 2, cfg)
		staleCacheRefused(t, apps[0], apps[1], store)
	})
}

// staleCacheRefused runs the scenario of TestUpdateFromAStaleCacheDecidesOnTheStream: here caches
// the user, other changes them; store is read to check that no session started.
func staleCacheRefused(t *testing.T, here, other commands.Application, store eventstore.Store) {
	ctx := t.Context()
	reg, err := here.Commands.RegisterUser.Handle(ctx, commands.RegisterUser{
		Meta: commands.Meta{ActorUID: eventstore.ActorSystem}, Email: "admin@example.com", Password: strongPassword, Role: domain.RoleAdmin,
	})
	if err != nil {
		t.Fatal(err)
	}
	admin := commands.Meta{ActorUID: reg.Account.UID, ActorRole: domain.RoleAdmin.String()}
	reg, err = here.Commands.RegisterUser.Handle(ctx, commands.RegisterUser{Email: "stale@example.com", Password: strongPassword})
	if err != nil {
		t.Fatal(err)
	}
	uid := reg.Account.UID
	if _, err := here.Commands.SignIn.Handle(ctx, commands.SignIn{Login: "stale@example.com", Password: strongPassword}); err != nil {
		t.Fatal(err) // here caches the user
	}
	spend := func(app commands.Application, amount int64, ref string) error {
		_, err := app.Commands.SpendFromWallet.Handle(ctx, commands.SpendFromWallet{
			Meta: commands.Meta{ActorUID: uid}, UID: domain.UserID(uid), Amount: amount, Reference: ref,
		})
		return err
	}
	if err := spend(other, 80, "elsewhere"); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "spending 50 of the 20 left, cached at 100", spend(here, 50, "here"), domain.ErrInsufficientFunds)
	if err := spend(here, 20, "the rest"); err != nil {
		t.Errorf("spending what is left: %v", err)
	}

	if _, err := other.Commands.ChangeUserState.Handle(ctx, commands.ChangeUserState{Meta: admin, UID: domain.UserID(uid), State: domain.StateBanned, Reason: "fraud"}); err != nil {
		t.Fatal(err)
	}
	stream := func() []string {
		var out []string
		for ev, err := range store.ReadStream(ctx, domain.UserStreamPrefix+uid, 0) {
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, ev.Type)
		}
		return out
	}
	n := len(stream())
	_, err = here.Commands.SignIn.Handle(ctx, commands.SignIn{Login: "stale@example.com", Password: strongPassword})
	wantErr(t, "signing in, banned on another replica", err, domain.ErrUserNotActive)
	if after := stream(); slices.Contains(after[n:], "SessionStarted") {
		t.Errorf("a session was started for the banned user: %v", after[n:])
	}
}
