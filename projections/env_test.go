package projections_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq"

	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/eventstore/eventstoretest"
	"github.com/idlog/idlog/eventstore/postgres"
	"github.com/idlog/idlog/eventstore/sqlite"
	"github.com/idlog/idlog/migrations"
	"github.com/idlog/idlog/projections"
)

// env is fresh storage for one test: an event store and the read models' database beside it.
type env struct {
	store   eventstore.Store
	db      *sqlx.DB
	dialect migrations.Dialect
}

type envOptions struct {
	beforeCommit func(ctx context.Context, a eventstore.Append)
	// replicas: on PostgreSQL, the store notifies appends and projector progress to other
	// processes (see sharedProgress).
	replicas bool
}

// backend opens fresh storage of one engine.
type backend struct {
	name string
	open func(t testing.TB, o envOptions) env
}

func backends() []backend {
	return []backend{{"sqlite", openSQLite}, {"postgres", openPostgres}}
}

// eachBackend runs fn as a parallel subtest per engine. Postgres runs when IDLOG_TEST_DATABASE_URL
// is set and is skipped, saying so, otherwise.
func eachBackend(t *testing.T, fn func(t *testing.T, b backend)) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			fn(t, b)
		})
	}
}

func openSQLite(t testing.TB, o envOptions) env {
	t.Helper()
	path := filepath.Join(t.TempDir(), "idlog.db")
	s, err := sqlite.Open(context.Background(), sqlite.Options{Path: path, BeforeCommit: o.beforeCommit})
	if err != nil {
		t.Fatal(err)
	}
	db, err := projections.OpenSQLite(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		db.Close()
		s.Close()
	})
	return env{store: s, db: db, dialect: migrations.SQLite}
}

func openPostgres(t testing.TB, o envOptions) env {
	t.Helper()
	dsn := eventstoretest.PostgresSchema(t)
	po := postgres.Options{DSN: dsn, BeforeCommit: o.beforeCommit}
	if o.replicas {
		po.Replicas, po.ProgressChannel = true, projections.ProgressChannel
	}
	s, err := postgres.Open(context.Background(), po)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return env{store: s, db: s.DB(), dialect: migrations.Postgres}
}

// sharedProgress is what serve gives replicas' runtimes on PostgreSQL: the store's notifications
// of projector commits. Nil on SQLite.
func (e env) sharedProgress() func() <-chan struct{} {
	if s, ok := e.store.(*postgres.Store); ok {
		return s.Progressed
	}
	return nil
}

func (e env) views() (*projections.UsersView, *projections.ActivityView) {
	return projections.NewUsersView(e.db, e.dialect), projections.NewActivityView(e.db, e.dialect)
}

// runtime returns a runtime over the env's storage, not started; o's DB, Dialect and Store are
// filled in.
func (e env) runtime(t testing.TB, o projections.Options, ps ...projections.Projector) *projections.Runtime {
	t.Helper()
	o.DB, o.Dialect, o.Store, o.LogInDB = e.db, e.dialect, e.store, true
	if o.RetryMin == 0 {
		o.RetryMin, o.RetryMax = 5*time.Millisecond, 50*time.Millisecond
	}
	r, err := projections.New(o, ps...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// start starts a runtime and stops it when the test ends.
func start(t testing.TB, r *projections.Runtime) *projections.Runtime {
	t.Helper()
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Stop)
	return r
}

func waitFor(t testing.TB, r *projections.Runtime, pos uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := r.WaitFor(ctx, pos); err != nil {
		t.Fatalf("WaitFor(%d): %v", pos, err)
	}
}

var uidSeq atomic.Uint64

// newUID returns a user id no other test uses.
func newUID() string {
	n := uidSeq.Add(1) + uint64(rand.Uint32())<<16
	return fmt.Sprintf("ID%010X", n&0xFFFFFFFFFF)
}

// appendTo appends domain events to a user's stream.
func appendTo(t testing.TB, s eventstore.Store, uid string, meta eventstore.Metadata, events ...domain.Event) eventstore.AppendResult {
	t.Helper()
	res, err := s.Append(context.Background(), eventstore.Append{Stream: domain.UserStreamPrefix + uid, Expected: eventstore.Any, Events: newEvents(t, meta, events...)})
	if err != nil {
		t.Fatalf("append to %s: %v", uid, err)
	}
	return res
}

func newEvents(t testing.TB, meta eventstore.Metadata, events ...domain.Event) []eventstore.NewEvent {
	t.Helper()
	out := make([]eventstore.NewEvent, len(events))
	for i, e := range events {
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = eventstore.NewEvent{Type: e.EventType(), SchemaVersion: 1, Data: b, Metadata: meta}
	}
	return out
}

func registered(uid, email, username string) domain.UserRegistered {
	return domain.UserRegistered{
		UserID: domain.UserID(uid), Email: email, Username: username, Role: domain.RoleMember,
		PasswordHash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
	}
}

// userMeta is the metadata of a user acting on their own account.
func userMeta(uid string) eventstore.Metadata {
	return eventstore.Metadata{ActorUID: uid, ActorRole: "member", IP: "192.0.2.7", UserAgent: "test-agent/1.0"}
}

// workload appends a varied history: users registered, then random account events, some by an
// administrator. It returns the last position and how many events it appended.
func workload(t testing.TB, s eventstore.Store, users, eventsPerUser int, seed uint64) (last uint64, n int) {
	t.Helper()
	rnd := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	admin := newUID()
	adminMeta := eventstore.Metadata{ActorUID: admin, ActorRole: "admin", IP: "198.51.100.1", UserAgent: "admin-console"}
	res := appendTo(t, s, admin, userMeta(admin), registered(admin, strings.ToLower(admin)+"@admin.test", ""))
	last, n = res.LastPosition, 1
	uids := make([]string, users)
	for i := range uids {
		uids[i] = newUID()
		res := appendTo(t, s, uids[i], userMeta(uids[i]), registered(uids[i], strings.ToLower(uids[i])+"@example.com", fmt.Sprintf("u%d_%d", seed, i)))
		last, n = res.LastPosition, n+1
	}
	for range users * eventsPerUser {
		uid := uids[rnd.IntN(len(uids))]
		meta := userMeta(uid)
		var e domain.Event
		at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
		switch rnd.IntN(12) {
		case 0:
			e = domain.SessionStarted{SessionID: uuid.NewString(), At: at, ExpiresAt: at.Add(time.Hour)}
		case 1:
			e = domain.LoginFailed{Reason: domain.LoginFailureInvalidPassword, At: at}
		case 2:
			e = domain.SessionEnded{SessionID: uuid.NewString(), Reason: domain.SessionEndLogout}
		case 3:
			e = domain.PasswordChanged{PasswordHash: "$argon2id$v=19$new"}
		case 4:
			e = domain.EmailVerified{Email: strings.ToLower(uid) + "@example.com"}
		case 5:
			e = domain.UsernameChanged{To: fmt.Sprintf("n%d", rnd.IntN(1<<30))}
		case 6:
			e = domain.UserDataUpdated{Data: json.RawMessage(fmt.Sprintf(`{"n":%d}`, rnd.IntN(1000)))}
		case 7:
			e = domain.OTPEnabled{Step: int64(rnd.IntN(1000))}
		case 8:
			e = domain.OTPDisabled{Step: int64(rnd.IntN(1000))}
		case 9:
			e, meta = domain.UserStateChanged{From: domain.StateActive, To: domain.StateLocked, Reason: "test"}, adminMeta
		case 10:
			e, meta = domain.RoleChanged{From: domain.RoleMember, To: domain.RoleSupport}, adminMeta
		default:
			e = domain.OTPVerified{Step: int64(rnd.IntN(1000))}
		}
		res := appendTo(t, s, uid, meta, e)
		last, n = res.LastPosition, n+1
	}
	return last, n
}

// snapshot is the live generation of the read models, as text, generation left out. The tables of
// a projector that never ran are empty.
func snapshot(t testing.TB, db *sqlx.DB) string {
	t.Helper()
	var b strings.Builder
	for _, q := range []struct{ table, sql string }{
		{"users", `SELECT uid, email, coalesce(username, '-'), role, level, state, otp, coalesce(data, '-'), email_verified, created_at, updated_at, login_disabled
			FROM users WHERE generation = (SELECT live FROM projection_generations WHERE name = 'users') ORDER BY uid`},
		{"activity", `SELECT id, uid, coalesce(target_uid, '-'), topic, action, result, user_ip, user_agent, coalesce(data, '-'), created_at
			FROM activity WHERE generation = (SELECT live FROM projection_generations WHERE name = 'activity') ORDER BY id`},
		{"user_labels", `SELECT uid, label_key, scope, label_value, description, created_at, updated_at
			FROM user_labels WHERE generation = (SELECT live FROM projection_generations WHERE name = 'labels') ORDER BY uid, label_key, scope`},
		{"wallets", `SELECT uid, free, standard, updated_at
			FROM wallets WHERE generation = (SELECT live FROM projection_generations WHERE name = 'wallet') ORDER BY uid`},
		{"wallet_movements", `SELECT id, uid, balance, amount, reason, reference, actor_uid, created_at
			FROM wallet_movements WHERE generation = (SELECT live FROM projection_generations WHERE name = 'wallet') ORDER BY id`},
		{"user_sessions", `SELECT uid, sid, user_agent, user_ip, cookie, started_at, last_seen_at, expires_at
			FROM user_sessions WHERE generation = (SELECT live FROM projection_generations WHERE name = 'sessions') ORDER BY uid, sid`},
		{"password_classes", `SELECT uid, class
			FROM password_classes WHERE generation = (SELECT live FROM projection_generations WHERE name = 'password_classes') ORDER BY uid`},
	} {
		b.WriteString("table " + q.table + "\n")
		rows, err := db.Query(q.sql)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		for rows.Next() {
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			for _, v := range vals {
				if bs, ok := v.([]byte); ok {
					v = string(bs)
				}
				fmt.Fprintf(&b, "%v|", v)
			}
			b.WriteByte('\n')
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
		b.WriteString("--\n")
	}
	return b.String()
}

// count counts the live rows of a read-model table.
func count(t testing.TB, db *sqlx.DB, table string) int {
	t.Helper()
	var n int
	if err := db.Get(&n, `SELECT count(*) FROM `+table+` WHERE generation = (SELECT live FROM projection_generations WHERE name = '`+table+`')`); err != nil {
		t.Fatal(err)
	}
	return n
}
