package api_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/idlog/idlog/api"
	"github.com/idlog/idlog/attempts"
	"github.com/idlog/idlog/auth"
	"github.com/idlog/idlog/commands"
	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/eventstore/eventstoretest"
	"github.com/idlog/idlog/eventstore/postgres"
	"github.com/idlog/idlog/eventstore/sqlite"
	"github.com/idlog/idlog/idempotency"
	"github.com/idlog/idlog/migrations"
	"github.com/idlog/idlog/projections"
)

// deployment is one database (event store, read models, kept answers) and the keys every idlog
// process of it shares; start runs one more API server over it: a restart, or another replica.
type deployment struct {
	store   eventstore.Store
	keys    eventstore.KeyOwners
	db      *sqlx.DB
	runtime *projections.Runtime
	users   *projections.UsersView
	secret  []byte
	signKey ed25519.PrivateKey
	clock   *clock
	mail    *mailbox
	logs    *logBuffer
	dialect migrations.Dialect
}

func newDeployment(t testing.TB, backend string) *deployment {
	ctx := context.Background()
	d := &deployment{clock: &clock{}, logs: &logBuffer{}}
	var dialect migrations.Dialect
	switch backend {
	case "sqlite":
		path := filepath.Join(t.TempDir(), "idlog.db")
		s, err := sqlite.Open(ctx, sqlite.Options{Path: path})
		if err != nil {
			t.Fatal(err)
		}
		d.store, d.keys, dialect = s, s, migrations.SQLite
		if d.db, err = projections.OpenSQLite(ctx, path); err != nil {
			t.Fatal(err)
		}
	case "postgres":
		dsn := eventstoretest.PostgresSchema(t)
		s, err := postgres.Open(ctx, postgres.Options{DSN: dsn})
		if err != nil {
			t.Fatal(err)
		}
		d.store, d.keys, dialect = s, s, migrations.Postgres
		if d.db, err = sqlx.Open("postgres", dsn); err != nil {
			t.Fatal(err)
		}
	}
	d.dialect = dialect
	log := slog.New(slog.NewJSONHandler(d.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	d.users = projections.NewUsersView(d.db, dialect)
	rt, err := projections.New(projections.Options{DB: d.db, Dialect: dialect, Store: d.store, Logger: log, LogInDB: true,
		RetryMin: 5 * time.Millisecond, RetryMax: 50 * time.Millisecond}, d.users)
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	if err := rt.Start(rctx); err != nil {
		t.Fatal(err)
	}
	d.runtime = rt
	t.Cleanup(func() {
		stop()
		rt.Stop()
		d.db.Close()
		d.store.Close()
	})
	d.clock.ns.Store(time.Now().UnixNano())
	d.secret = make([]byte, auth.KeySize)
	rand.Read(d.secret)
	_, d.signKey, _ = ed25519.GenerateKey(rand.Reader)
	d.mail = &mailbox{log: commands.LogNotifier{Logger: log}, box: map[string][]string{}}
	return d
}

// start runs a new API server over the deployment: new command handlers and caches, nothing in
// memory from the servers before.
func (d *deployment) start(t testing.TB) *server {
	log := slog.New(slog.NewJSONHandler(d.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	hasher, err := auth.NewPasswordHasher(cheap)
	if err != nil {
		t.Fatal(err)
	}
	sealer, _ := auth.NewSealer(d.secret)
	signer, err := auth.NewSigner(d.signKey, auth.SignerConfig{Issuer: "idlog", Audience: "idlog", Now: d.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	limiter, err := attempts.New(attempts.Options{DB: d.db, Dialect: d.dialect})
	if err != nil {
		t.Fatal(err)
	}
	app, err := commands.New(commands.Deps{
		Store: d.store, Keys: d.keys, Registry: domain.NewEventRegistry(), Hasher: hasher, Sealer: sealer, Tokens: signer, Notifier: d.mail,
		Attempts: limiter,
	}, commands.Config{Streams: commands.StreamsConfig{Now: d.clock.Now}, Codes: commands.CodesConfig{Logger: log}, SignIn: commands.SignInConfig{Logger: log}})
	if err != nil {
		t.Fatal(err)
	}
	h := api.NewServer(api.Options{Logger: log, Version: "test", Accounts: &api.Accounts{
		App: app, Users: usersView{d.users}, Tokens: signer, Projections: d.runtime,
		Idempotency: &api.Idempotency{Store: idempotency.NewSQLStore(d.db), Secret: d.secret},
	}})
	return &server{h: validated(t, h), raw: h, store: d.store, clock: d.clock, mail: d.mail, logs: d.logs, signer: signer, key: d.signKey, runtime: d.runtime}
}

// count is how many events of the type the user's stream holds.
func count(t *testing.T, s *server, uid, typ string) int {
	t.Helper()
	n := 0
	for _, e := range s.events(t) {
		if e.StreamID == "user-"+uid && e.Type == typ {
			n++
		}
	}
	return n
}

// The attack of issue 12: two anonymous callers confirm with the same Idempotency-Key, with a
// restart between. Before, the second got the first user's account back and their own change
// was dropped (the key was claimed per command and actor, and anonymous callers share the actor
// ""). Each must get their own answer and their own change; a retry of the first, on the
// restarted server, gets the first answer byte for byte and appends nothing.
func TestIdempotencyKeyNeverCrossesAnonymousCallers(t *testing.T) {
	t.Parallel()
	for _, b := range backends(t) {
		t.Run(b, func(t *testing.T) {
			t.Parallel()
			d := newDeployment(t, b)
			first := d.start(t)
			alice, bob := first.signUp(t, "alice@example.com", ""), first.signUp(t, "bob@example.com", "")
			key := http.Header{"Idempotency-Key": {"confirm-1"}}
			confirm := func(s *server, email string) response {
				token := d.mail.last(t, commands.NotifyEmailConfirmation, email)
				return s.do(request{method: http.MethodPost, path: "/api/v2/identity/users/email/confirm_code", body: obj{"token": token}, header: key})
			}
			aliceAnswer := confirm(first, "alice@example.com").want(t, http.StatusCreated)
			if got := aliceAnswer.fields(t)["uid"]; got != alice {
				t.Fatalf("alice's confirmation answered %v", got)
			}

			restarted := d.start(t)
			bobAnswer := confirm(restarted, "bob@example.com").want(t, http.StatusCreated)
			if got := bobAnswer.fields(t)["uid"]; got != bob || bobAnswer.header.Get(api.IdempotentReplayedHeader) != "" {
				t.Fatalf("bob's confirmation answered user %v (replayed %q), want his own", got, bobAnswer.header.Get(api.IdempotentReplayedHeader))
			}
			if n := count(t, restarted, bob, "EmailVerified"); n != 1 {
				t.Fatalf("bob's confirmation stored %d EmailVerified events, want 1", n)
			}

			events := len(restarted.events(t))
			again := confirm(restarted, "alice@example.com").want(t, http.StatusCreated)
			if again.body != aliceAnswer.body || again.header.Get(api.IdempotentReplayedHeader) != "true" {
				t.Fatalf("alice's retry after the restart answered %s (replayed %q), want %s", again.body, again.header.Get(api.IdempotentReplayedHeader), aliceAnswer.body)
			}
			if n := len(restarted.events(t)); n != events {
				t.Fatalf("alice's retry appended %d events", n-events)
			}

			// The same with password resets: each caller's new password is the one that works.
			gen := "/api/v2/identity/users/password/generate_code"
			restarted.post(gen, obj{"email": "alice@example.com"}, "").want(t, http.StatusCreated)
			restarted.post(gen, obj{"email": "bob@example.com"}, "").want(t, http.StatusCreated)
			reset := func(s *server, email, next string) response {
				token := d.mail.last(t, commands.NotifyPasswordReset, email)
				return s.do(request{method: http.MethodPost, path: "/api/v2/identity/users/password/confirm_code", header: http.Header{"Idempotency-Key": {"reset-1"}},
					body: obj{"reset_password_token": token, "password": next, "confirm_password": next}})
			}
			reset(restarted, "alice@example.com", "alice's own new passphrase").want(t, http.StatusCreated)
			third := d.start(t)
			reset(third, "bob@example.com", "bob's very own new passphrase").want(t, http.StatusCreated)
			for email, pw := range map[string]string{"alice@example.com": "alice's own new passphrase", "bob@example.com": "bob's very own new passphrase"} {
				third.post("/api/v2/identity/sessions", obj{"login": email, "password": pw}, "").want(t, http.StatusOK)
			}
		})
	}
}

// Two servers on one database: the same request sent to both at once runs once, and every
// answer is the first; the key with another body is refused on either; a retry of a sign-in
// gets the same token, which is kept sealed, never in plain.
func TestIdempotencyAcrossReplicas(t *testing.T) {
	t.Parallel()
	for _, b := range backends(t) {
		t.Run(b, func(t *testing.T) {
			t.Parallel()
			d := newDeployment(t, b)
			replicas := []*server{d.start(t), d.start(t)}
			uid := replicas[0].signUp(t, "twin@example.com", "")
			signIn := request{method: http.MethodPost, path: "/api/v2/identity/sessions", body: obj{"login": "twin@example.com", "password": password},
				header: http.Header{"Idempotency-Key": {"sign-in-1"}}}
			signedIn := replicas[0].do(signIn).want(t, http.StatusOK)
			retried := replicas[1].do(signIn).want(t, http.StatusOK)
			if retried.body != signedIn.body || retried.header.Get(api.IdempotentReplayedHeader) != "true" {
				t.Fatalf("a sign-in retried on the other replica answered %s, want %s", retried.body, signedIn.body)
			}
			token := signedIn.fields(t)["access_token"].(string)
			var kept [][]byte
			if err := d.db.Select(&kept, `SELECT answer FROM idempotency_answers`); err != nil {
				t.Fatal(err)
			}
			for _, a := range kept {
				if bytes.Contains(a, []byte(token)) || bytes.Contains(a, []byte("twin@example.com")) {
					t.Fatal("a kept answer holds the access token or the email in plain")
				}
			}

			put := request{method: http.MethodPut, path: "/api/v2/resource/users/me", token: token, body: obj{"data": obj{"n": 1}},
				header: http.Header{"Idempotency-Key": {"data-1"}}}
			before := count(t, replicas[0], uid, "UserDataUpdated")
			var wg sync.WaitGroup
			answers := make(chan response, 20)
			for i := range 20 {
				wg.Go(func() { answers <- replicas[i%2].do(put) })
			}
			wg.Wait()
			close(answers)
			var first string
			for r := range answers {
				r.want(t, http.StatusOK)
				if first == "" {
					first = r.body
				} else if r.body != first {
					t.Fatalf("answers differ:\n%s\n%s", r.body, first)
				}
			}
			if n := count(t, replicas[0], uid, "UserDataUpdated") - before; n != 1 {
				t.Fatalf("20 sends of one request over two replicas stored %d changes, want 1", n)
			}
			put.body = obj{"data": obj{"n": 2}}
			for _, s := range replicas {
				s.do(put).want(t, http.StatusUnprocessableEntity, "idempotency.key_reused")
			}
			if n := count(t, replicas[0], uid, "UserDataUpdated") - before; n != 1 {
				t.Fatalf("a reused key stored a change")
			}

			// A sign-out closes the session its retry comes with: the token still names its user,
			// so the retry gets the sign-out's answer, not a 401.
			signOut := request{method: http.MethodDelete, path: "/api/v2/identity/sessions", token: token, header: http.Header{"Idempotency-Key": {"bye"}}}
			out := replicas[0].do(signOut)
			if out.status/100 != 2 {
				t.Fatalf("sign-out: %d %s", out.status, out.body)
			}
			again := replicas[1].do(signOut)
			if again.status != out.status || again.body != out.body || again.header.Get(api.IdempotentReplayedHeader) != "true" {
				t.Fatalf("sign-out retried: %d %s (replayed %q), want %d %s replayed", again.status, again.body, again.header.Get(api.IdempotentReplayedHeader), out.status, out.body)
			}
			replicas[1].get("/api/v2/resource/users/me", token).want(t, http.StatusUnauthorized, "authz.invalid_session")
		})
	}
}

// BenchmarkIdempotencyKey measures what a key costs a PUT /users/me through the router: without
// a key, with a new key each time (claim, run, keep the sealed answer), and a retry (a replay
// from the store, nothing run). Compare the three within one run.
func BenchmarkIdempotencyKey(b *testing.B) {
	for _, backend := range benchBackends() {
		b.Run(backend, func(b *testing.B) {
			d := newDeployment(b, backend)
			s := d.start(b)
			s.signUp(b, "bench@example.com", "")
			token := s.signIn(b, "bench@example.com", "")
			put := func(i int, key string) {
				rq := request{method: http.MethodPut, path: "/api/v2/resource/users/me", token: token, body: obj{"data": obj{"n": i}}}
				if key != "" {
					rq.header = http.Header{"Idempotency-Key": {key}}
				}
				if r := s.do(rq); r.status != http.StatusOK {
					b.Fatalf("%d %s", r.status, r.body)
				}
			}
			b.Run("no key", func(b *testing.B) {
				for i := 0; b.Loop(); i++ {
					put(i, "")
				}
			})
			b.Run("new key", func(b *testing.B) {
				for i := 0; b.Loop(); i++ {
					put(-i-1, fmt.Sprintf("k-%d", i))
				}
			})
			put(-1e9, "retry")
			b.Run("retry", func(b *testing.B) {
				for b.Loop() {
					put(-1e9, "retry")
				}
			})
		})
	}
}
