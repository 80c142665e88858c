package audit_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq"

	"github.com/idlog/idlog/audit"
	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/eventstore/eventstoretest"
	"github.com/idlog/idlog/eventstore/postgres"
	"github.com/idlog/idlog/eventstore/sqlite"
	"github.com/idlog/idlog/migrations"
)

var (
	_ audit.Importer = (*postgres.Store)(nil)
	_ audit.Importer = (*sqlite.Store)(nil)
)

// env is one event store under test, its ledger, and a writable handle on its database for
// tampering with it the way an intruder with SQL access would.
type env struct {
	store   eventstore.Store
	ledger  *audit.Ledger
	db      *sqlx.DB // writable, on the store's database
	dialect migrations.Dialect
}

// q rebinds ? placeholders for the env's dialect.
func (e *env) q(query string) string {
	if e.dialect == migrations.Postgres {
		return sqlx.Rebind(sqlx.DOLLAR, query)
	}
	return query
}

func (e *env) exec(t testing.TB, query string, args ...any) {
	t.Helper()
	if _, err := e.db.Exec(e.q(query), args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

type backend struct {
	name string
	open func(t testing.TB) *env
}

// backends are SQLite always, Postgres when IDLOG_TEST_DATABASE_URL is set.
func backends(t testing.TB) []backend {
	bs := []backend{{"sqlite", openSQLite}}
	if os.Getenv("IDLOG_TEST_DATABASE_URL") != "" {
		bs = append(bs, backend{"postgres", openPostgres})
	} else {
		t.Log("Postgres SKIPPED: set IDLOG_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test?sslmode=disable")
	}
	return bs
}

func openSQLite(t testing.TB) *env {
	t.Helper()
	path := filepath.Join(t.TempDir(), "events.db")
	s, err := sqlite.Open(context.Background(), sqlite.Options{Path: path, PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(path)}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Set("_txlock", "immediate")
	u.RawQuery = q.Encode()
	db, err := sqlx.Open("sqlite", u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	l, err := audit.NewLedger(db, migrations.SQLite)
	if err != nil {
		t.Fatal(err)
	}
	return &env{store: s, ledger: l, db: db, dialect: migrations.SQLite}
}

func openPostgres(t testing.TB) *env {
	t.Helper()
	s, err := postgres.Open(context.Background(), postgres.Options{DSN: eventstoretest.PostgresSchema(t), PollInterval: 20 * time.Millisecond, MaxOpenConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	l, err := audit.NewLedger(s.DB(), migrations.Postgres)
	if err != nil {
		t.Fatal(err)
	}
	return &env{store: s, ledger: l, db: s.DB(), dialect: migrations.Postgres}
}

// user is a registered user of the seeded log.
type user struct {
	uid   domain.UserID
	email string
}

// seed appends a small but varied history: n users who register, some change their email or
// username or data, with metadata. It returns the users.
func seed(t testing.TB, s eventstore.Store, n int) []user {
	t.Helper()
	ctx := context.Background()
	var users []user
	for i := range n {
		r := uuid.New()
		uid := domain.NewUserID([5]byte(r[:5]))
		name := "user" + strings.ToLower(string(uid))
		email := name + "@example.com"
		reg := mustJSON(t, domain.UserRegistered{UserID: uid, Email: email, Username: name,
			PasswordHash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", Role: domain.RoleMember})
		meta := eventstore.Metadata{ActorUID: string(uid), ActorRole: "member", IP: "192.0.2.7", UserAgent: "Mozilla/5.0 <test> & \u2028",
			CorrelationID: uuid.NewString(), IdempotencyKey: fmt.Sprintf("k-%d", i)}
		events := []eventstore.NewEvent{{Type: "UserRegistered", SchemaVersion: 1, Data: reg, Metadata: meta}}
		if _, err := s.Append(ctx, eventstore.Append{Stream: uid.Stream(), Expected: eventstore.NoStream, Events: events}); err != nil {
			t.Fatal(err)
		}
		switch i % 3 {
		case 1:
			newEmail := "new" + email
			ch := mustJSON(t, domain.EmailChanged{From: email, To: newEmail})
			// Data with spaces and an HTML character: stored bytes, not a re-encoding, are chained.
			upd := []byte(`{"data": {"note": "a <b> & c", "n": 1.50}} `)
			_, err := s.Append(ctx, eventstore.Append{Stream: uid.Stream(), Expected: eventstore.Exactly(1), Events: []eventstore.NewEvent{
				{Type: "EmailChanged", SchemaVersion: 1, Data: ch, Metadata: eventstore.Metadata{ActorUID: "system"}},
				{Type: "UserDataUpdated", SchemaVersion: 1, Data: upd},
			}})
			if err != nil {
				t.Fatal(err)
			}
			email = newEmail
		case 2:
			ch := mustJSON(t, domain.UsernameChanged{From: name, To: "renamed" + name})
			if _, err := s.Append(ctx, eventstore.Append{Stream: uid.Stream(), Expected: eventstore.Exactly(1), Events: []eventstore.NewEvent{
				{Type: "UsernameChanged", SchemaVersion: 1, Data: ch, Metadata: eventstore.Metadata{ActorUID: "ID0000000000", ActorRole: "admin"}},
			}}); err != nil {
				t.Fatal(err)
			}
		}
		users = append(users, user{uid: uid, email: email})
	}
	return users
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// logOf reads the whole log.
func logOf(t testing.TB, s eventstore.Store) []eventstore.Event {
	t.Helper()
	var out []eventstore.Event
	for e, err := range s.ReadAll(context.Background(), 0, eventstore.Filter{}) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

func newSealer(t testing.TB, e *env, o audit.SealerOptions) *audit.Sealer {
	t.Helper()
	o.Store, o.Ledger = e.store, e.ledger
	s, err := audit.NewSealer(o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func catchUp(t testing.TB, e *env) audit.Seal {
	t.Helper()
	tail, err := newSealer(t, e, audit.SealerOptions{CheckpointEvery: 7}).CatchUp(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return tail
}

func verify(t testing.TB, e *env) audit.Report {
	t.Helper()
	// Bounded, so that a verify that never ends fails the test instead of hanging it.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := audit.Verify(ctx, e.store, e.ledger)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
