package commands

import (
	"context"
	"crypto/ed25519"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/idlog/idlog/attempts"
	"github.com/idlog/idlog/auth"
	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/eventstore/sqlite"
	"github.com/idlog/idlog/migrations"
)

// presented are the fields by which a command presents a secret to be checked.
var presented = []string{"Password", "OldPassword", "Code", "OTPCode", "Token"}

// setsSecret are the commands whose secret field sets a new secret instead of presenting one, and
// SignIn, which goes through the limiter itself (its counters depend on the login and address).
var setsSecret = map[string]bool{"RegisterUser": true, "CreateUser": true, "SignIn": true}

// A new command that presents a secret cannot forget the attempt limiter: its handler in Commands
// must be guarded.
func TestEveryCommandPresentingASecretIsGuarded(t *testing.T) {
	t.Parallel()
	handlers := reflect.TypeFor[Commands]()
	guardedSeen := 0
	for f := range handlers.Fields() {
		handle, ok := f.Type.MethodByName("Handle")
		if !ok {
			t.Fatalf("Commands.%s has no Handle method", f.Name)
		}
		// Handle(ctx, cmd) on an interface type has no receiver among its inputs.
		cmd := handle.Type.In(handle.Type.NumIn() - 1)
		if cmd == reflect.TypeFor[context.Context]() || cmd.Kind() != reflect.Struct {
			t.Fatalf("Commands.%s: cannot find the command type", f.Name)
		}
		var secrets []string
		for _, name := range presented {
			if _, ok := cmd.FieldByName(name); ok {
				secrets = append(secrets, name)
			}
		}
		if len(secrets) == 0 || setsSecret[cmd.Name()] {
			continue
		}
		if !cmd.Implements(reflect.TypeFor[presentsSecrets]()) {
			t.Errorf("%s presents %v but does not say which counters its attempts go to (presentsSecrets)", cmd.Name(), secrets)
		}
		if f.Type.Kind() != reflect.Interface {
			t.Errorf("Commands.%s is a %s: a command presenting %v needs a guarded Handler", f.Name, f.Type, secrets)
			continue
		}
		guardedSeen++
	}
	if guardedSeen < 9 {
		t.Errorf("%d guarded commands found, want at least 9", guardedSeen)
	}
}

// New fills every handler of a command that presents a secret with a guard, not the bare handler.
func TestNewGuardsTheHandlers(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "idlog.db")
	store, err := sqlite.Open(t.Context(), sqlite.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	hasher, _ := auth.NewPasswordHasher(auth.Params{Memory: 64, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32})
	sealer, _ := auth.NewSealer(make([]byte, auth.KeySize))
	_, priv, _ := ed25519.GenerateKey(nil)
	signer, _ := auth.NewSigner(priv, auth.SignerConfig{Issuer: "idlog", Audience: "idlog"})
	limiter, err := attempts.New(attempts.Options{DB: store.DB(), Dialect: migrations.SQLite})
	if err != nil {
		t.Fatal(err)
	}
	app, err := New(Deps{Store: store, Keys: store, Registry: domain.NewEventRegistry(), Hasher: hasher, Sealer: sealer,
		Tokens: signer, Notifier: LogNotifier{}, Attempts: limiter}, Config{})
	if err != nil {
		t.Fatal(err)
	}
	v := reflect.ValueOf(app.Commands)
	for i := range v.NumField() {
		f := v.Field(i)
		if f.Kind() != reflect.Interface {
			continue
		}
		if name := f.Elem().Type().Name(); !strings.HasPrefix(name, "guarded[") {
			t.Errorf("Commands.%s is a %s, not a guard", v.Type().Field(i).Name, name)
		}
	}
}
