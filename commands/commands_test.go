package commands_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"log/slog"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idlog/idlog/attempts"
	"github.com/idlog/idlog/auth"
	"github.com/idlog/idlog/commands"
	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/eventstore/sqlite"
	"github.com/idlog/idlog/migrations"
	"github.com/idlog/idlog/projections"
)

// cheap argon2 parameters: tests hash hundreds of passwords, some 50 at once.
var cheap = auth.Params{Memory: 64, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32}

const strongPassword = "correct horse battery staple"

// clock is a settable clock shared by the commands and the token signer.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Date(2026, 3, 1, 12, 0, 10, 0, time.UTC).UnixNano())
	return c
}
func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }
func (c *clock) Step() int64             { return auth.TOTPStep(c.Now()) }
func (c *clock) code(t *testing.T, secret string, step int64) string {
	t.Helper()
	code, err := auth.TOTPCode(secret, step)
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// mailbox is a Notifier that keeps what it was given, as a mailer would deliver it.
type mailbox struct {
	mu   sync.Mutex
	sent []mail
}

type mail struct {
	kind, to string
	payload  map[string]string
}

func (m *mailbox) Notify(_ context.Context, kind, to string, payload map[string]string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sent = append(m.sent, mail{kind, to, payload})
	return nil
}

// last returns the token of the last mail of kind to the address.
func (m *mailbox) last(t *testing.T, kind, to string) string {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := len(m.sent) - 1; i >= 0; i-- {
		if m.sent[i].kind == kind && m.sent[i].to == to {
			return m.sent[i].payload["token"]
		}
	}
	t.Fatalf("no %s mail to %s", kind, to)
	return ""
}

func (m *mailbox) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.sent)
}

type env struct {
	app    commands.Application
	store  *sqlite.Store
	clock  *clock
	mail   *mailbox
	signer *auth.Signer
	deps   commands.Deps // app's
	cfg    commands.Config
}

func newEnv(t *testing.T, cfg commands.Config) *env {
	t.Helper()
	return newEnvOver(t, cfg, nil)
}

// newEnvOver is newEnv whose application reads and appends through over(store) when over is not
// nil.
func newEnvOver(t *testing.T, cfg commands.Config, over func(*sqlite.Store) eventstore.Store) *env {
	t.Helper()
	path := filepath.Join(t.TempDir(), "idlog.db")
	store, err := sqlite.Open(t.Context(), sqlite.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	db, err := projections.OpenSQLite(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close(); store.Close() })
	limiter, err := attempts.New(attempts.Options{DB: db, Dialect: migrations.SQLite})
	if err != nil {
		t.Fatal(err)
	}
	c := newClock()
	hasher, sealer, signer := testSecrets(t, cheap, c.Now)
	cfg.Streams.Now = c.Now
	mail := &mailbox{}
	deps := commands.Deps{
		Store: store, Keys: store, Registry: domain.NewEventRegistry(), Hasher: hasher, Sealer: sealer,
		Tokens: signer, Notifier: mail, Attempts: limiter,
	}
	if over != nil {
		deps.Store = over(store)
	}
	app, err := commands.New(deps, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &env{app: app, store: store, clock: c, mail: mail, signer: signer, deps: deps, cfg: cfg}
}

// testSecrets returns what an application needs besides its store: a password hasher at p, a
// sealer of a new key, and a token signer of a new key whose clock is now (nil: the wall clock).
func testSecrets(t testing.TB, p auth.Params, now func() time.Time) (*auth.PasswordHasher, *auth.Sealer, *auth.Signer) {
	t.Helper()
	hasher, err := auth.NewPasswordHasher(p)
	if err != nil {
		t.Fatal(err)
	}
	key := make([]byte, auth.KeySize)
	rand.Read(key)
	sealer, err := auth.NewSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, err := auth.NewSigner(priv, auth.SignerConfig{Issuer: "idlog", Audience: "idlog", Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return hasher, sealer, signer
}

// replica is another application over e's store and keys, with caches of its own: another
// process.
func (e *env) replica(t *testing.T) commands.Application {
	t.Helper()
	app, err := commands.New(e.deps, e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	return app
}

func (e *env) register(t *testing.T, email, username string) commands.Result {
	t.Helper()
	r, err := e.app.Commands.RegisterUser.Handle(t.Context(), commands.RegisterUser{Email: email, Username: username, Password: strongPassword})
	if err != nil {
		t.Fatalf("register %s: %v", email, err)
	}
	return r
}

func (e *env) signIn(t *testing.T, login, code string) commands.SignInResult {
	t.Helper()
	r, err := e.app.Commands.SignIn.Handle(t.Context(), commands.SignIn{Login: login, Password: strongPassword, OTPCode: code})
	if err != nil {
		t.Fatalf("sign in %s: %v", login, err)
	}
	return r
}

// events returns every stored event of the user.
func (e *env) events(t *testing.T, uid string) []eventstore.Event {
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

func types(events []eventstore.Event) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.Type
	}
	return out
}

// otpSecret enables two-factor authentication for uid and returns the secret and the step used.
func (e *env) enableOTP(t *testing.T, uid string) string {
	t.Helper()
	gen, err := e.app.Commands.GenerateOTPSecret.Handle(t.Context(), commands.GenerateOTPSecret{UID: domain.UserID(uid)})
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(gen.URL)
	if err != nil {
		t.Fatal(err)
	}
	secret := u.Query().Get("secret")
	if _, err := e.app.Commands.EnableOTP.Handle(t.Context(), commands.EnableOTP{UID: domain.UserID(uid), Code: e.clock.code(t, secret, e.clock.Step())}); err != nil {
		t.Fatalf("enable OTP: %v", err)
	}
	return secret
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: error %v, want %v", what, err, want)
	}
}

func (e *env) isOpen(t *testing.T, uid, sid string) (bool, error) {
	t.Helper()
	_, ok, err := e.app.Sessions.Open(t.Context(), uid, sid)
	return ok, err
}

func TestLogNotifierNeverLogsTheCode(t *testing.T) {
	t.Parallel()
	var logs strings.Builder
	next := &mailbox{}
	n := commands.LogNotifier{Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})), Next: next}
	if err := n.Notify(t.Context(), commands.NotifyPasswordReset, "a@example.com", map[string]string{"token": "s3cret-token"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), `msg="email code sent"`) || !strings.Contains(logs.String(), "to=a@example.com") || strings.Contains(logs.String(), "s3cret-token") {
		t.Errorf("log = %q", logs.String())
	}
	if next.last(t, commands.NotifyPasswordReset, "a@example.com") != "s3cret-token" {
		t.Error("the code did not reach Next")
	}
}

// newLimiter is an attempt limiter of its own, over a fresh SQLite database, for tests whose
// subject is not the limits.
func newLimiter(t testing.TB) *attempts.Limiter {
	t.Helper()
	path := filepath.Join(t.TempDir(), "attempts.db")
	store, err := sqlite.Open(context.Background(), sqlite.Options{Path: path}) // applies the migrations
	if err != nil {
		t.Fatal(err)
	}
	db, err := projections.OpenSQLite(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close(); store.Close() })
	limiter, err := attempts.New(attempts.Options{DB: db, Dialect: migrations.SQLite})
	if err != nil {
		t.Fatal(err)
	}
	return limiter
}
