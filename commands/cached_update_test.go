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
// one's sign-in with the right password is refused, and no session starts.
func TestUpdateFromAStaleCacheDecidesOnTheStream(t *testing.T) {
	t.Parallel()
	e := newEnv(t, commands.Config{Wallet: commands.WalletConfig{SignupBonus: 100}})
	other := e.replica(t)
	admin := e.staff(t, "admin@example.com", domain.RoleAdmin)
	uid := e.register(t, "stale@example.com", "").Account.UID
	e.signIn(t, "stale@example.com", "") // this replica caches the user
	spend := func(app commands.Application, amount int64, ref string) error {
		_, err := app.Commands.SpendFromWallet.Handle(t.Context(), commands.SpendFromWallet{
			Meta: commands.Meta{ActorUID: uid}, UID: domain.UserID(uid), Amount: amount, Reference: ref,
		})
		return err
	}
	if err := spend(other, 80, "elsewhere"); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "spending 50 of the 20 left, cached at 100", spend(e.app, 50, "here"), domain.ErrInsufficientFunds)
	if err := spend(e.app, 20, "the rest"); err != nil {
		t.Errorf("spending what is left: %v", err)
	}

	if _, err := other.Commands.ChangeUserState.Handle(t.Context(), commands.ChangeUserState{Meta: admin, UID: domain.UserID(uid), State: domain.StateBanned, Reason: "fraud"}); err != nil {
		t.Fatal(err)
	}
	n := len(e.events(t, uid))
	_, err := e.app.Commands.SignIn.Handle(t.Context(), commands.SignIn{Login: "stale@example.com", Password: strongPassword})
	wantErr(t, "signing in, banned on another replica", err, domain.ErrUserNotActive)
	if evs := e.events(t, uid); len(evs) > n && slices.Contains(types(evs[n:]), "SessionStarted") {
		t.Errorf("a session was started for the banned user: %v", types(evs[n:]))
	}
}
