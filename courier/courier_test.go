package courier_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/idlog/idlog/attempts"
	"github.com/idlog/idlog/auth"
	"github.com/idlog/idlog/commands"
	"github.com/idlog/idlog/courier"
	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/eventstore/eventstoretest"
	"github.com/idlog/idlog/eventstore/postgres"
	"github.com/idlog/idlog/eventstore/sqlite"
	"github.com/idlog/idlog/internal/smtptest"
	"github.com/idlog/idlog/lease"
	"github.com/idlog/idlog/migrations"
	"github.com/idlog/idlog/projections"
)

var cheap = auth.Params{Memory: 64, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32}

type backend struct {
	name    string
	dialect migrations.Dialect
	open    func(t testing.TB) (eventstore.Store, *sql.DB)
}

func backends() []backend {
	return []backend{
		{"sqlite", migrations.SQLite, func(t testing.TB) (eventstore.Store, *sql.DB) {
			path := filepath.Join(t.TempDir(), "idlog.db")
			store, err := sqlite.Open(context.Background(), sqlite.Options{Path: path})
			if err != nil {
				t.Fatal(err)
			}
			db, err := projections.OpenSQLite(context.Background(), path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close(); store.Close() })
			return store, db.DB
		}},
		{"postgres", migrations.Postgres, func(t testing.TB) (eventstore.Store, *sql.DB) {
			dsn := eventstoretest.PostgresSchema(t)
			store, err := postgres.Open(context.Background(), postgres.Options{DSN: dsn})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { store.Close() })
			return store, store.DB().DB
		}},
	}
}

// env is the commands of idlog over a store that keeps an outbox, and a courier's clock.
type env struct {
	b      backend
	app    commands.Application
	store  eventstore.Store
	db     *sql.DB
	outbox courier.Outbox
	skew   atomic.Int64 // added to the courier's clock, to make retries due
}

func newEnv(t testing.TB, b backend) *env {
	t.Helper()
	store, db := b.open(t)
	limiter, err := attempts.New(attempts.Options{DB: sqlx.NewDb(db, map[migrations.Dialect]string{migrations.SQLite: "sqlite", migrations.Postgres: "postgres"}[b.dialect]), Dialect: b.dialect})
	if err != nil {
		t.Fatal(err)
	}
	hasher, err := auth.NewPasswordHasher(cheap)
	if err != nil {
		t.Fatal(err)
	}
	key := make([]byte, auth.KeySize)
	rand.Read(key)
	sealer, err := auth.NewSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	signKey, err := auth.LoadOrCreateSigningKey(filepath.Join(t.TempDir(), "signing.pem"))
	if err != nil {
		t.Fatal(err)
	}
	signer, err := auth.NewSigner(signKey, auth.SignerConfig{Issuer: "idlog", Audience: "idlog"})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{b: b, store: store, db: db, outbox: courier.Outbox{Sealer: sealer}}
	e.app, err = commands.New(commands.Deps{
		Store: store, Keys: store.(eventstore.KeyOwners), Registry: domain.NewEventRegistry(), Hasher: hasher, Sealer: sealer,
		Tokens: signer, Notifier: commands.LogNotifier{}, Attempts: limiter, Outbox: e.outbox,
	}, commands.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) now() time.Time { return time.Now().Add(time.Duration(e.skew.Load())) }

// courier returns a courier of the env delivering e-mail with email.
func (e *env) courier(t testing.TB, email courier.Sender, tune func(*courier.Options)) *courier.Courier {
	t.Helper()
	tpl, err := courier.NewTemplates("", "https://app.example.com")
	if err != nil {
		t.Fatal(err)
	}
	o := courier.Options{DB: e.db, Dialect: e.b.dialect, Outbox: e.outbox, Templates: tpl, Email: email,
		RetryMin: time.Second, RetryMax: time.Minute, Now: e.now}
	if tune != nil {
		tune(&o)
	}
	c, err := courier.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (e *env) smtpSender(t testing.TB, s *smtptest.Server) *courier.SMTP {
	t.Helper()
	sender, err := courier.NewSMTP(courier.SMTPOptions{URL: s.URL(), From: "idlog@example.com", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sender.Close() })
	return sender
}

// drain runs passes until the queue has nothing due.
func drain(t testing.TB, c *courier.Courier) {
	t.Helper()
	for range 1000 {
		n, err := c.DeliverDue(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
	}
	t.Fatal("the queue never drained")
}

func (e *env) queue(t testing.TB) []courier.Queued {
	t.Helper()
	q, err := courier.Queue(context.Background(), e.db, e.b.dialect, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// codeIn returns the code of a message body: the line after "code:".
func codeIn(t testing.TB, text string) string {
	t.Helper()
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		if strings.HasSuffix(strings.ToLower(strings.TrimSpace(l)), "code:") { // en and de
			for _, next := range lines[i+1:] {
				if s := strings.TrimSpace(next); s != "" {
					return s
				}
			}
		}
	}
	t.Fatalf("no code in %q", text)
	return ""
}

// received is a message the SMTP server accepted, with its text body.
type received struct {
	smtptest.Message
	text string
}

// lastTo returns the last message the server got for addr, of kind.
func lastTo(t testing.TB, s *smtptest.Server, addr, kind string) received {
	t.Helper()
	got := s.Messages()
	for i := len(got) - 1; i >= 0; i-- {
		if len(got[i].To) == 1 && got[i].To[0] == addr && got[i].Mail.Header.Get("X-Idlog-Kind") == kind {
			m, err := mail.ReadMessage(bytes.NewReader(got[i].Raw))
			if err != nil {
				t.Fatal(err)
			}
			text, err := courier.TextBody(m)
			if err != nil {
				t.Fatal(err)
			}
			return received{got[i], text}
		}
	}
	t.Fatalf("no %s message to %s among %d", kind, addr, len(got))
	return received{}
}

// TestJourneysOverSMTP: sign-up and password reset deliver, through a real SMTP server, messages
// whose codes and links complete them; the password change is then noticed by mail.
func TestJourneysOverSMTP(t *testing.T) {
	t.Parallel()
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			e := newEnv(t, b)
			srv := smtptest.Start(t)
			c := e.courier(t, e.smtpSender(t, srv), nil)

			const addr = "alice@example.com"
			res, err := e.app.Commands.RegisterUser.Handle(ctx, commands.RegisterUser{Email: addr, Password: "Correct-Horse-9-battery"})
			if err != nil {
				t.Fatal(err)
			}
			if q := e.queue(t); len(q) != 1 || q[0].Kind != commands.NotifyEmailConfirmation || q[0].UID != string(res.Account.UID) {
				t.Fatalf("queue after sign-up: %+v", q)
			}
			drain(t, c)
			if q := e.queue(t); len(q) != 0 {
				t.Fatalf("delivered messages still queued: %+v", q)
			}
			m := lastTo(t, srv, addr, commands.NotifyEmailConfirmation)
			code := codeIn(t, m.text)
			if !strings.Contains(m.text, "https://app.example.com/confirm-email?token=") {
				t.Fatalf("no confirmation link in %q", m.text)
			}
			if id := m.Mail.Header.Get("Message-Id"); !strings.HasSuffix(id, "@idlog>") {
				t.Fatalf("Message-ID %q is not the outbox id", id)
			}
			if _, err := e.app.Commands.VerifyEmail.Handle(ctx, commands.VerifyEmail{Token: code}); err != nil {
				t.Fatalf("the mailed code does not confirm: %v", err)
			}

			if _, err := e.app.Commands.RequestPasswordReset.Handle(ctx, commands.RequestPasswordReset{Email: addr}); err != nil {
				t.Fatal(err)
			}
			drain(t, c)
			reset := codeIn(t, lastTo(t, srv, addr, commands.NotifyPasswordReset).text)
			if _, err := e.app.Commands.ResetPassword.Handle(ctx, commands.ResetPassword{Token: reset,
				Password: "New-Staple-77-horses", ConfirmPassword: "New-Staple-77-horses"}); err != nil {
				t.Fatalf("the mailed reset code does not reset: %v", err)
			}
			if _, err := e.app.Commands.SignIn.Handle(ctx, commands.SignIn{Login: addr, Password: "New-Staple-77-horses"}); err != nil {
				t.Fatalf("sign in with the new password: %v", err)
			}
			drain(t, c)
			lastTo(t, srv, addr, commands.NoticePasswordChanged)
		})
	}
}

// TestSMTPDownThenUp: messages queued while the SMTP server is down are retried with backoff and,
// once it is back, each is delivered exactly once.
func TestSMTPDownThenUp(t *testing.T) {
	t.Parallel()
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			e := newEnv(t, b)
			srv := smtptest.Start(t)
			c := e.courier(t, e.smtpSender(t, srv), nil)
			srv.Stop()
			const n = 20
			for i := range n {
				addr := "user" + string(rune('a'+i)) + "@example.com"
				if _, err := e.app.Commands.RegisterUser.Handle(ctx, commands.RegisterUser{Email: addr, Password: "Correct-Horse-9-battery"}); err != nil {
					t.Fatal(err)
				}
			}
			// Two failed passes: every message counts its attempts and waits.
			for pass := 1; pass <= 2; pass++ {
				drain(t, c)
				q := e.queue(t)
				if len(q) != n {
					t.Fatalf("pass %d: %d queued, want %d", pass, len(q), n)
				}
				for _, m := range q {
					if m.Attempts != pass || m.Dead || m.LastError == "" || !m.NextAttemptAt.After(e.now()) {
						t.Fatalf("pass %d: %+v", pass, m)
					}
				}
				e.skew.Add(int64(time.Hour))
			}
			srv.Restart()
			drain(t, c)
			if q := e.queue(t); len(q) != 0 {
				t.Fatalf("still queued: %+v", q)
			}
			seen := map[string]int{}
			for _, m := range srv.Messages() {
				seen[m.Mail.Header.Get("Message-Id")]++
			}
			if len(seen) != n {
				t.Fatalf("%d distinct messages delivered, want %d", len(seen), n)
			}
			for id, k := range seen {
				if k != 1 {
					t.Fatalf("message %s delivered %d times", id, k)
				}
			}
		})
	}
}

// TestDeadAfterMaxAttempts: a message that keeps failing is dead after the bound, kept with its
// error and no longer tried.
func TestDeadAfterMaxAttempts(t *testing.T) {
	t.Parallel()
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, b)
			srv := smtptest.Start(t)
			srv.Stop()
			c := e.courier(t, e.smtpSender(t, srv), func(o *courier.Options) { o.MaxAttempts = 3 })
			if _, err := e.app.Commands.RegisterUser.Handle(context.Background(), commands.RegisterUser{Email: "dead@example.com", Password: "Correct-Horse-9-battery"}); err != nil {
				t.Fatal(err)
			}
			for range 5 {
				drain(t, c)
				e.skew.Add(int64(time.Hour))
			}
			q := e.queue(t)
			if len(q) != 1 || !q[0].Dead || q[0].Attempts != 3 {
				t.Fatalf("queue: %+v", q)
			}
		})
	}
}

// TestTemplateOverride: a template in the override directory replaces the embedded one, and the
// profile-less user gets the default locale.
func TestTemplateOverride(t *testing.T) {
	t.Parallel()
	b := backends()[0]
	e := newEnv(t, b)
	srv := smtptest.Start(t)
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "en"), 0o700)
	os.WriteFile(filepath.Join(dir, "en", "email_confirmation.tmpl"), []byte(
		`{{define "subject"}}Welcome aboard{{end}}{{define "text"}}Your code:
{{.Token}}
{{.Link}}{{end}}{{define "html"}}<b>{{.Token}}</b>{{end}}`), 0o600)
	tpl, err := courier.NewTemplates(dir, "https://front.example.org/")
	if err != nil {
		t.Fatal(err)
	}
	c := e.courier(t, e.smtpSender(t, srv), func(o *courier.Options) { o.Templates = tpl })
	if _, err := e.app.Commands.RegisterUser.Handle(context.Background(), commands.RegisterUser{Email: "bob@example.com", Password: "Correct-Horse-9-battery"}); err != nil {
		t.Fatal(err)
	}
	drain(t, c)
	m := lastTo(t, srv, "bob@example.com", commands.NotifyEmailConfirmation)
	if m.Mail.Header.Get("Subject") != "Welcome aboard" || !strings.Contains(m.text, "https://front.example.org/confirm-email?token=") {
		t.Fatalf("override not used: %q %q", m.Mail.Header.Get("Subject"), m.text)
	}
	if _, err := e.app.Commands.VerifyEmail.Handle(context.Background(), commands.VerifyEmail{Token: codeIn(t, m.text)}); err != nil {
		t.Fatal(err)
	}
}

// TestSMSReachesHTTPEndpoint: an SMS queued with an append reaches a local HTTP endpoint with its
// code, in the Twilio form and the JSON webhook format, with the message id as Idempotency-Key.
func TestSMSReachesHTTPEndpoint(t *testing.T) {
	t.Parallel()
	for _, format := range []string{courier.SMSTwilio, courier.SMSWebhook} {
		t.Run(format, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, backends()[0])
			var mu sync.Mutex
			var bodies, keys []string
			endpoint := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				r.ParseForm()
				mu.Lock()
				defer mu.Unlock()
				keys = append(keys, r.Header.Get("Idempotency-Key"))
				if format == courier.SMSTwilio {
					if u, p, _ := r.BasicAuth(); u != "AC1" || p != "secret" || r.PostForm.Get("To") != "+15550001" {
						w.WriteHeader(http.StatusUnauthorized)
						return
					}
					bodies = append(bodies, r.PostForm.Get("Body"))
				} else {
					var b strings.Builder
					buf := make([]byte, 4096)
					n, _ := r.Body.Read(buf)
					b.Write(buf[:n])
					bodies = append(bodies, b.String())
				}
				w.WriteHeader(http.StatusCreated)
			}))
			defer endpoint.Close()
			sms, err := courier.NewSMS(courier.SMSOptions{Format: format, URL: endpoint.URL, From: "idlog", User: "AC1", Password: "secret"})
			if err != nil {
				t.Fatal(err)
			}
			c := e.courier(t, courier.Mailbox{Dir: t.TempDir()}, func(o *courier.Options) { o.SMS = sms })
			msg, err := e.outbox.Message("phone_code", courier.ChannelSMS, "ID0000000001", courier.Payload{To: "+15550001", Token: "482913"}, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			ev := eventstore.NewEvent{Type: "PhoneCodeRequested", SchemaVersion: 1, Data: []byte(`{}`)}
			if _, err := e.store.Append(context.Background(), eventstore.Append{Stream: "test-sms", Expected: eventstore.NoStream,
				Events: []eventstore.NewEvent{ev}, Outbox: []eventstore.OutboxMessage{msg}}); err != nil {
				t.Fatal(err)
			}
			drain(t, c)
			mu.Lock()
			defer mu.Unlock()
			if len(bodies) != 1 || !strings.Contains(bodies[0], "482913") || keys[0] != msg.ID.String() {
				t.Fatalf("endpoint got %q with keys %q", bodies, keys)
			}
			if q := e.queue(t); len(q) != 0 {
				t.Fatalf("still queued: %+v", q)
			}
		})
	}
}

// TestOutboxOnlyWithItsEvents: a message is queued if and only if the events that cause it are
// stored: a rejected append, or a rejected command, queues nothing; the sealed row holds neither
// the address nor the code in plain.
func TestOutboxOnlyWithItsEvents(t *testing.T) {
	t.Parallel()
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			e := newEnv(t, b)
			msg, err := e.outbox.Message("phone_code", courier.ChannelSMS, "ID0000000001", courier.Payload{To: "+15550001", Token: "482913"}, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			ev := eventstore.NewEvent{Type: "PhoneCodeRequested", SchemaVersion: 1, Data: []byte(`{}`)}
			_, err = e.store.Append(ctx, eventstore.Append{Stream: "test-conflict", Expected: eventstore.Exactly(3),
				Events: []eventstore.NewEvent{ev}, Outbox: []eventstore.OutboxMessage{msg}})
			if !errors.Is(err, eventstore.ErrConcurrency) {
				t.Fatalf("append at a wrong version: %v", err)
			}
			if q := e.queue(t); len(q) != 0 {
				t.Fatalf("a rejected append queued %+v", q)
			}
			// An append retried with the same event ids stores nothing new, and queues nothing new.
			ev.ID = uuid.New()
			retry := eventstore.Append{Stream: "test-retry", Expected: eventstore.NoStream, Events: []eventstore.NewEvent{ev}, Outbox: []eventstore.OutboxMessage{msg}}
			for range 2 {
				if _, err := e.store.Append(ctx, retry); err != nil {
					t.Fatal(err)
				}
			}
			if q := e.queue(t); len(q) != 1 || q[0].ID != msg.ID.String() {
				t.Fatalf("a retried append queued %+v", q)
			}
			if _, err := e.db.Exec(`DELETE FROM outbox`); err != nil {
				t.Fatal(err)
			}
			const addr = "carol@example.com"
			if _, err := e.app.Commands.RegisterUser.Handle(ctx, commands.RegisterUser{Email: addr, Password: "Correct-Horse-9-battery"}); err != nil {
				t.Fatal(err)
			}
			if _, err := e.app.Commands.RegisterUser.Handle(ctx, commands.RegisterUser{Email: addr, Password: "Correct-Horse-9-battery"}); !errors.Is(err, commands.ErrEmailTaken) {
				t.Fatalf("second sign-up: %v", err)
			}
			if q := e.queue(t); len(q) != 1 {
				t.Fatalf("queue after one sign-up and one refused: %+v", q)
			}
			var sealed []byte
			if err := e.db.QueryRow(`SELECT sealed FROM outbox`).Scan(&sealed); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(sealed), addr) || strings.Contains(string(sealed), "token") {
				t.Fatal("the outbox row holds its payload in plain")
			}
		})
	}
}

func countTo(s *smtptest.Server, addr, kind string) int {
	n := 0
	for _, m := range s.Messages() {
		if len(m.To) == 1 && m.To[0] == addr && m.Mail.Header.Get("X-Idlog-Kind") == kind {
			n++
		}
	}
	return n
}

// TestSecurityNotices: a sign-in from a new address, a password change (in the user's profile
// locale) and an email change (to the old address) are noticed by mail; a sign-in from a known
// address is not.
func TestSecurityNotices(t *testing.T) {
	t.Parallel()
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			e := newEnv(t, b)
			srv := smtptest.Start(t)
			dir := t.TempDir()
			os.MkdirAll(filepath.Join(dir, "fr"), 0o700)
			os.WriteFile(filepath.Join(dir, "fr", "password_changed.tmpl"), []byte(
				`{{define "subject"}}Votre mot de passe a été changé{{end}}{{define "text"}}Bonjour{{end}}{{define "html"}}<p>Bonjour</p>{{end}}`), 0o600)
			tpl, err := courier.NewTemplates(dir, "https://app.example.com")
			if err != nil {
				t.Fatal(err)
			}
			c := e.courier(t, e.smtpSender(t, srv), func(o *courier.Options) { o.Templates = tpl })

			const addr, pw = "dora@example.com", "Correct-Horse-9-battery"
			res, err := e.app.Commands.RegisterUser.Handle(ctx, commands.RegisterUser{Email: addr, Password: pw})
			if err != nil {
				t.Fatal(err)
			}
			uid := domain.UserID(res.Account.UID)
			from := commands.Meta{IP: "203.0.113.7", UserAgent: "Firefox/140"}
			for range 2 {
				if _, err := e.app.Commands.SignIn.Handle(ctx, commands.SignIn{Meta: from, Login: addr, Password: pw}); err != nil {
					t.Fatal(err)
				}
			}
			drain(t, c)
			if n := countTo(srv, addr, commands.NoticeNewSignIn); n != 1 {
				t.Fatalf("%d new sign-in notices after two sign-ins from one address, want 1", n)
			}
			if m := lastTo(t, srv, addr, commands.NoticeNewSignIn); !strings.Contains(m.text, "203.0.113.7") || !strings.Contains(m.text, "Firefox/140") {
				t.Fatalf("the notice does not say from where: %q", m.text)
			}
			if _, err := e.app.Commands.SignIn.Handle(ctx, commands.SignIn{Meta: commands.Meta{IP: "198.51.100.9"}, Login: addr, Password: pw}); err != nil {
				t.Fatal(err)
			}
			drain(t, c)
			if n := countTo(srv, addr, commands.NoticeNewSignIn); n != 2 {
				t.Fatalf("%d new sign-in notices after a sign-in from another address, want 2", n)
			}

			locale := "fr-FR"
			if _, err := e.app.Commands.CreateProfile.Handle(ctx, commands.CreateProfile{UID: uid, Profile: domain.ProfilePatch{Locale: &locale}}); err != nil {
				t.Fatal(err)
			}
			if _, err := e.app.Commands.ChangePassword.Handle(ctx, commands.ChangePassword{UID: uid, OldPassword: pw,
				NewPassword: "New-Staple-77-horses", ConfirmPassword: "New-Staple-77-horses"}); err != nil {
				t.Fatal(err)
			}
			drain(t, c)
			subject, _ := new(mime.WordDecoder).DecodeHeader(lastTo(t, srv, addr, commands.NoticePasswordChanged).Mail.Header.Get("Subject"))
			if subject != "Votre mot de passe a été changé" {
				t.Fatalf("the notice is not in the profile's locale: %q", subject)
			}

			if _, err := e.app.Commands.ChangeEmail.Handle(ctx, commands.ChangeEmail{UID: uid, Email: "dora.new@example.com", Password: "New-Staple-77-horses"}); err != nil {
				t.Fatal(err)
			}
			drain(t, c)
			if m := lastTo(t, srv, addr, commands.NoticeEmailChanged); !strings.Contains(m.text, "dora.new@example.com") {
				t.Fatalf("the old address is not told the new one: %q", m.text)
			}
			code := codeIn(t, lastTo(t, srv, "dora.new@example.com", commands.NotifyEmailConfirmation).text)
			if _, err := e.app.Commands.VerifyEmail.Handle(ctx, commands.VerifyEmail{Token: code}); err != nil {
				t.Fatalf("the new address's code: %v", err)
			}
		})
	}
}

// TestOneCourierAcrossReplicas: two couriers on one database, each with its own lease client,
// deliver every message once between them: the lease gives the queue one owner at a time.
func TestOneCourierAcrossReplicas(t *testing.T) {
	t.Parallel()
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			e := newEnv(t, b)
			srv := smtptest.Start(t)
			const n = 30
			for i := range n {
				if _, err := e.app.Commands.RegisterUser.Handle(ctx, commands.RegisterUser{Email: fmt.Sprintf("rep%d@example.com", i), Password: "Correct-Horse-9-battery"}); err != nil {
					t.Fatal(err)
				}
			}
			var wg sync.WaitGroup
			for _, owner := range []string{"a", "b"} {
				l, err := lease.New(lease.Options{DB: e.db, Dialect: b.dialect, Owner: owner, TTL: time.Second})
				if err != nil {
					t.Fatal(err)
				}
				c := e.courier(t, e.smtpSender(t, srv), func(o *courier.Options) { o.Lease = l; o.Poll = 20 * time.Millisecond; o.Batch = 7 })
				wg.Go(func() { c.Run(ctx) })
			}
			for deadline := time.Now().Add(time.Minute); len(e.queue(t)) > 0; time.Sleep(20 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("still queued after a minute: %d", len(e.queue(t)))
				}
			}
			cancel()
			wg.Wait()
			seen := map[string]int{}
			for _, m := range srv.Messages() {
				seen[m.Mail.Header.Get("Message-Id")]++
			}
			if len(seen) != n {
				t.Fatalf("%d distinct messages delivered, want %d", len(seen), n)
			}
			for id, k := range seen {
				if k != 1 {
					t.Fatalf("message %s delivered %d times by two couriers", id, k)
				}
			}
		})
	}
}

// TestMetrics: sent and failed deliveries are counted per channel, and the queue age is that of
// the oldest waiting message.
func TestMetrics(t *testing.T) {
	t.Parallel()
	e := newEnv(t, backends()[0])
	srv := smtptest.Start(t)
	srv.Stop()
	reg := prometheus.NewRegistry()
	c := e.courier(t, e.smtpSender(t, srv), func(o *courier.Options) { o.Metrics = reg })
	if _, err := e.app.Commands.RegisterUser.Handle(context.Background(), commands.RegisterUser{Email: "m@example.com", Password: "Correct-Horse-9-battery"}); err != nil {
		t.Fatal(err)
	}
	drain(t, c)
	e.skew.Add(int64(time.Hour))
	if age := gauge(t, reg, "idlog_courier_queue_age_seconds"); age < 3600 {
		t.Fatalf("queue age %v, want the hour the message waited", age)
	}
	srv.Restart()
	drain(t, c)
	if sent, failed := counter(t, reg, "idlog_courier_sent_total"), counter(t, reg, "idlog_courier_failed_total"); sent != 1 || failed != 1 {
		t.Fatalf("sent %v, failed %v; want 1 and 1", sent, failed)
	}
	if age := gauge(t, reg, "idlog_courier_queue_age_seconds"); age != 0 {
		t.Fatalf("queue age %v with nothing queued", age)
	}
}

func metric(t *testing.T, reg *prometheus.Registry, name string) *dto.Metric {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name && len(f.Metric) > 0 {
			return f.Metric[0]
		}
	}
	t.Fatalf("no metric %s", name)
	return nil
}

func counter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	return metric(t, reg, name).GetCounter().GetValue()
}

func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	return metric(t, reg, name).GetGauge().GetValue()
}

// TestPhoneCodeBySMS: a phone added through the commands queues its code with the event; the
// courier texts it to the SMS endpoint, and the code it carries verifies the number.
func TestPhoneCodeBySMS(t *testing.T) {
	t.Parallel()
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			e := newEnv(t, b)
			srv := smtptest.Start(t)
			var mu sync.Mutex
			var texts []map[string]string
			endpoint := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				r.ParseForm()
				mu.Lock()
				texts = append(texts, map[string]string{"to": r.PostForm.Get("To"), "body": r.PostForm.Get("Body")})
				mu.Unlock()
				w.WriteHeader(http.StatusCreated)
			}))
			defer endpoint.Close()
			sms, err := courier.NewSMS(courier.SMSOptions{Format: courier.SMSTwilio, URL: endpoint.URL, From: "idlog", User: "AC1", Password: "secret"})
			if err != nil {
				t.Fatal(err)
			}
			c := e.courier(t, e.smtpSender(t, srv), func(o *courier.Options) { o.SMS = sms })

			const addr = "phone-owner@example.com"
			res, err := e.app.Commands.RegisterUser.Handle(ctx, commands.RegisterUser{Email: addr, Password: "Correct-Horse-9-battery"})
			if err != nil {
				t.Fatal(err)
			}
			drain(t, c)
			if _, err := e.app.Commands.VerifyEmail.Handle(ctx, commands.VerifyEmail{Token: codeIn(t, lastTo(t, srv, addr, commands.NotifyEmailConfirmation).text)}); err != nil {
				t.Fatal(err)
			}
			uid := domain.UserID(res.Account.UID)
			if _, err := e.app.Commands.AddPhone.Handle(ctx, commands.AddPhone{UID: uid, PhoneNumber: "+1 415 555 2671"}); err != nil {
				t.Fatal(err)
			}
			q := e.queue(t)
			if len(q) != 1 || q[0].Kind != commands.NotifyPhoneCode || q[0].Channel != courier.ChannelSMS {
				t.Fatalf("queue after adding a phone: %+v", q)
			}
			drain(t, c)
			mu.Lock()
			got := append([]map[string]string(nil), texts...)
			mu.Unlock()
			if len(got) != 1 || got[0]["to"] != "+14155552671" {
				t.Fatalf("texts: %+v", got)
			}
			code := ""
			for _, f := range strings.Fields(got[0]["body"]) {
				if len(strings.Trim(f, ".:")) == 6 {
					code = strings.Trim(f, ".:")
				}
			}
			if code == "" {
				t.Fatalf("no 6-digit code in %q", got[0]["body"])
			}
			if _, err := e.app.Commands.VerifyPhone.Handle(ctx, commands.VerifyPhone{UID: uid, PhoneNumber: "+14155552671", Code: "000000"}); err == nil && code != "000000" {
				t.Fatal("a wrong code verified the phone")
			}
			if _, err := e.app.Commands.VerifyPhone.Handle(ctx, commands.VerifyPhone{UID: uid, PhoneNumber: "+14155552671", Code: code}); err != nil {
				t.Fatalf("the texted code does not verify the phone: %v", err)
			}
		})
	}
}

// TestRetryDeadMessage: a dead message retried (the admin route's Lister.Retry) is live again
// with a fresh round of attempts, and the courier, woken, delivers it once the server is back.
func TestRetryDeadMessage(t *testing.T) {
	t.Parallel()
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, b)
			srv := smtptest.Start(t)
			srv.Stop()
			c := e.courier(t, e.smtpSender(t, srv), func(o *courier.Options) { o.MaxAttempts = 2 })
			if _, err := e.app.Commands.RegisterUser.Handle(context.Background(), commands.RegisterUser{Email: "again@example.com", Password: "Correct-Horse-9-battery"}); err != nil {
				t.Fatal(err)
			}
			for range 3 {
				drain(t, c)
				e.skew.Add(int64(time.Hour))
			}
			q := e.queue(t)
			if len(q) != 1 || !q[0].Dead {
				t.Fatalf("queue: %+v, want one dead message", q)
			}
			srv.Restart()
			woken := false
			l := courier.Lister{DB: e.db, Dialect: e.b.dialect, Wake: func() { woken = true }}
			if err := l.Retry(context.Background(), q[0].ID); err != nil {
				t.Fatal(err)
			}
			if page, total, err := l.Page(context.Background(), 1, 10); err != nil || total != 1 || page[0].Dead || page[0].Attempts != 0 {
				t.Fatalf("after the retry: %+v, %d, %v", page, total, err)
			}
			if !woken {
				t.Error("the retry did not wake the courier")
			}
			drain(t, c)
			if q := e.queue(t); len(q) != 0 {
				t.Fatalf("still queued: %+v", q)
			}
			if m := srv.Messages(); len(m) != 1 {
				t.Fatalf("%d messages delivered, want 1", len(m))
			}
			if err := l.Retry(context.Background(), q[0].ID); !errors.Is(err, courier.ErrNotQueued) {
				t.Errorf("retry of a delivered message: %v, want ErrNotQueued", err)
			}
		})
	}
}
