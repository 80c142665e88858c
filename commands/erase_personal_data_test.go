package commands_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/idlog/idlog/attempts"
	"github.com/idlog/idlog/auth"
	"github.com/idlog/idlog/commands"
	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/eventstore/sqlite"
	"github.com/idlog/idlog/migrations"
	"github.com/idlog/idlog/personaldata"
	"github.com/idlog/idlog/projections"
)

// newSealedEnv is newEnv over a store that seals personal data, with its eraser; withEraser false
// leaves the eraser out.
type sealedEnv struct {
	app   commands.Application
	store *personaldata.Store
}

func (e *sealedEnv) register(t *testing.T, email, username string) commands.Result {
	t.Helper()
	r, err := e.app.Commands.RegisterUser.Handle(t.Context(), commands.RegisterUser{Email: email, Username: username, Password: strongPassword})
	if err != nil {
		t.Fatalf("register %s: %v", email, err)
	}
	return r
}

// events reads the user's events through the sealing store.
func (e *sealedEnv) events(t *testing.T, uid string) []eventstore.Event {
	t.Helper()
	var out []eventstore.Event
	for ev, err := range e.store.ReadStream(t.Context(), domain.UserStreamPrefix+uid, 0) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ev)
	}
	return out
}

func newSealedEnv(t *testing.T, cfg commands.Config, withEraser bool) (*sealedEnv, *personaldata.Store) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "idlog.db")
	raw, err := sqlite.Open(t.Context(), sqlite.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	db, err := projections.OpenSQLite(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close(); raw.Close() })
	secret := make([]byte, auth.KeySize)
	rand.Read(secret)
	keys, err := personaldata.NewKeys(db, migrations.SQLite, secret)
	if err != nil {
		t.Fatal(err)
	}
	store, err := personaldata.Wrap(personaldata.Options{Store: raw, Keys: keys, Registry: domain.NewEventRegistry(), Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	limiter, err := attempts.New(attempts.Options{DB: db, Dialect: migrations.SQLite})
	if err != nil {
		t.Fatal(err)
	}
	hasher, err := auth.NewPasswordHasher(cheap)
	if err != nil {
		t.Fatal(err)
	}
	sealer, err := auth.NewSealer(secret)
	if err != nil {
		t.Fatal(err)
	}
	c := newClock()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, err := auth.NewSigner(priv, auth.SignerConfig{Issuer: "idlog", Audience: "idlog", Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Streams.Now = c.Now
	deps := commands.Deps{Store: store, Keys: store, Registry: domain.NewEventRegistry(), Hasher: hasher, Sealer: sealer,
		Tokens: signer, Notifier: &mailbox{}, Attempts: limiter}
	if withEraser {
		deps.Eraser = store
	}
	app, err := commands.New(deps, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &sealedEnv{app: app, store: store}, store
}

func TestErasePersonalData(t *testing.T) {
	t.Parallel()
	e, store := newSealedEnv(t, commands.Config{}, true)
	uid := e.register(t, "erin@example.com", "erin").Account.UID
	if _, err := e.app.Commands.SignIn.Handle(t.Context(), commands.SignIn{Login: "erin@example.com", Password: strongPassword}); err != nil {
		t.Fatal(err)
	}
	erase := func(role string) error {
		_, err := e.app.Commands.ErasePersonalData.Handle(t.Context(), commands.ErasePersonalData{
			Meta: commands.Meta{ActorUID: "ID0000000AD1", ActorRole: role}, UID: domain.UserID(uid)})
		return err
	}
	before := len(e.events(t, string(uid)))
	for _, role := range []string{"support", "auditor", "accountant", "member"} {
		wantErr(t, role+" erasing", erase(role), commands.ErrNotPermitted)
	}
	if n := len(e.events(t, string(uid))); n != before {
		t.Fatalf("refused erasures appended %d events", n-before)
	}
	if err := erase("compliance"); err != nil {
		t.Fatal(err)
	}
	events := e.events(t, string(uid))
	if got := types(events[before:]); !slices.Equal(got, []string{"AccountClosed", "SessionEnded", "UserErased"}) {
		t.Errorf("erasure appended %v", got)
	}
	for _, ev := range events {
		if strings.Contains(string(ev.Data), "erin@example.com") || strings.Contains(string(ev.Data), `"erin"`) {
			t.Errorf("%s reads %s after the erasure", ev.Type, ev.Data)
		}
	}
	var reg domain.UserRegistered
	if err := json.Unmarshal(events[0].Data, &reg); err != nil || reg.Email != domain.Erased {
		t.Errorf("UserRegistered after the erasure = %s (%v)", events[0].Data, err)
	}
	// Erasing again completes nothing more; the email is free for someone else.
	if err := erase("admin"); err != nil {
		t.Fatalf("erasing again: %v", err)
	}
	if n := len(e.events(t, string(uid))); n != len(events) {
		t.Errorf("erasing again appended %d events", n-len(events))
	}
	if erased, err := store.Keys().IsErased(t.Context(), string(uid)); err != nil || !erased {
		t.Errorf("key erased = %v, %v", erased, err)
	}
	e.register(t, "erin@example.com", "erin")
	// A command on the erased user is refused.
	_, err := e.app.Commands.ChangeUserState.Handle(t.Context(), commands.ChangeUserState{
		Meta: commands.Meta{ActorUID: eventstore.ActorSystem}, UID: domain.UserID(uid), State: domain.StateActive})
	wantErr(t, "reactivating an erased user", err, domain.ErrAccountClosed)
}

func TestErasureWithoutEraserAppendsNothing(t *testing.T) {
	t.Parallel()
	e, _ := newSealedEnv(t, commands.Config{}, false)
	uid := e.register(t, "erin@example.com", "").Account.UID
	before := len(e.events(t, string(uid)))
	_, err := e.app.Commands.ErasePersonalData.Handle(t.Context(), commands.ErasePersonalData{
		Meta: commands.Meta{ActorUID: eventstore.ActorSystem}, UID: domain.UserID(uid)})
	wantErr(t, "erasure without an eraser", err, commands.ErrErasureUnavailable)
	if n := len(e.events(t, string(uid))); n != before {
		t.Fatalf("appended %d events", n-before)
	}
}

func TestEraseOnDeleteErasesTheUsersOwnAccount(t *testing.T) {
	t.Parallel()
	e, _ := newSealedEnv(t, commands.Config{EraseOnDelete: true}, true)
	uid := e.register(t, "sam@example.com", "sam").Account.UID
	before := len(e.events(t, string(uid)))
	if _, err := e.app.Commands.DeleteAccount.Handle(t.Context(), commands.DeleteAccount{
		Meta: commands.Meta{ActorUID: string(uid), ActorRole: "member"}, UID: domain.UserID(uid), Password: strongPassword}); err != nil {
		t.Fatal(err)
	}
	if got := types(e.events(t, string(uid))[before:]); !slices.Equal(got, []string{"UserDeleted", "AccountClosed", "UserErased"}) {
		t.Errorf("own deletion appended %v", got)
	}
	e.register(t, "sam@example.com", "sam")
}
