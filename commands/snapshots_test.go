package commands_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/idlog/idlog/auth"
	"github.com/idlog/idlog/commands"
	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/eventstore/eventstoretest"
	"github.com/idlog/idlog/eventstore/postgres"
	"github.com/idlog/idlog/eventstore/sqlite"
)

// snapshotStore is a store that keeps snapshots: both SQL stores.
type snapshotStore interface {
	eventstore.Store
	eventstore.KeyOwners
	eventstore.Snapshots
}

// eachSnapshotStore runs fn on a new SQLite store and, with IDLOG_TEST_DATABASE_URL, a new
// PostgreSQL one.
func eachSnapshotStore(t *testing.T, fn func(t *testing.T, store snapshotStore)) {
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		s, err := sqlite.Open(t.Context(), sqlite.Options{Path: filepath.Join(t.TempDir(), "idlog.db")})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		fn(t, s)
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		s, err := postgres.Open(t.Context(), postgres.Options{DSN: eventstoretest.PostgresSchema(t)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		fn(t, s)
	})
}

func newStreams(t testing.TB, store snapshotStore, cfg commands.StreamsConfig) *commands.UserStreams {
	t.Helper()
	s, err := commands.NewUserStreams(store, store, domain.NewEventRegistry(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// appendEvents stores domain events at the end of the user's stream, as commands would have.
func appendEvents(t testing.TB, store eventstore.Store, uid domain.UserID, events ...domain.Event) {
	t.Helper()
	batch := make([]eventstore.NewEvent, len(events))
	for i, e := range events {
		data, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		batch[i] = eventstore.NewEvent{ID: uuid.Must(uuid.NewV7()), Type: e.EventType(), SchemaVersion: 1, Data: data}
	}
	if _, err := store.Append(t.Context(), eventstore.Append{Stream: uid.Stream(), Expected: eventstore.Any, Events: batch}); err != nil {
		t.Fatal(err)
	}
}

// signIns are n past sign-ins from minute `from`, one a minute, every third one signed out.
func signIns(prefix string, from, n int) []domain.Event {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var out []domain.Event
	for i := range n {
		at := t0.Add(time.Duration(from+i) * time.Minute)
		sid := fmt.Sprintf("%s%d", prefix, i)
		out = append(out, domain.SessionStarted{SessionID: sid, At: at, ExpiresAt: at.Add(15 * time.Minute)})
		if i%3 == 0 {
			out = append(out, domain.SessionEnded{SessionID: sid, Reason: domain.SessionEndLogout})
		}
	}
	return out
}

// newHistory stores a user with a history of the given number of sign-ins and returns them.
func newHistory(t testing.TB, store eventstore.Store, uid domain.UserID, n int) {
	t.Helper()
	appendEvents(t, store, uid, domain.UserRegistered{UserID: uid, Email: "h@example.com", PasswordHash: "$argon2id$x", Role: domain.RoleMember},
		domain.WalletCredited{Balance: domain.BalanceFree, Amount: 100, Reason: domain.WalletReasonSignupBonus})
	all := signIns("s", 0, n)
	for len(all) > 0 {
		k := min(len(all), 1000)
		appendEvents(t, store, uid, all[:k]...)
		all = all[k:]
	}
}

// rehydrated folds the user's whole stream, without any cache or snapshot.
func rehydrated(t *testing.T, store eventstore.Store, uid domain.UserID) *domain.User {
	t.Helper()
	reg := domain.NewEventRegistry()
	var history []domain.Event
	for e, err := range store.ReadStream(t.Context(), uid.Stream(), 0) {
		if err != nil {
			t.Fatal(err)
		}
		d, err := reg.Decode(e.Type, e.SchemaVersion, e.Data)
		if err != nil {
			t.Fatal(err)
		}
		history = append(history, d)
	}
	u, err := domain.RehydrateUser(history)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// wantSameUser fails unless the two users have the same version and state.
func wantSameUser(t *testing.T, what string, got, want *domain.User) {
	t.Helper()
	g, err := got.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	w, err := want.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if got.Version() != want.Version() || string(g) != string(w) {
		t.Fatalf("%s: user at version %d:\n%s\nwant version %d:\n%s", what, got.Version(), g, want.Version(), w)
	}
}

// TestColdLoadStartsFromTheSnapshot: a process that has not seen a user yet reads their stored
// snapshot and only the events after it. The snapshot is shown to be read by making it say
// something the events do not (a real snapshot never does).
func TestColdLoadStartsFromTheSnapshot(t *testing.T) {
	t.Parallel()
	eachSnapshotStore(t, func(t *testing.T, store snapshotStore) {
		ctx := t.Context()
		uid := domain.UserID("ID00000000C1")
		newHistory(t, store, uid, 180) // 242 events
		warm := newStreams(t, store, commands.StreamsConfig{SnapshotEvery: 50})
		u, err := commands.LoadUser(ctx, warm, uid)
		if err != nil {
			t.Fatal(err)
		}
		wantSameUser(t, "first load", u, rehydrated(t, store, uid))
		snap, ok, err := store.LoadSnapshot(ctx, uid.Stream())
		if err != nil || !ok || snap.Version != u.Version() || snap.Schema != domain.UserSnapshotSchema {
			t.Fatalf("snapshot after the first load: %+v, %v, %v; want one at version %d", snap, ok, err, u.Version())
		}

		// A snapshot at the stream's current version that says the wallet holds 999 more coins.
		marked := rehydrated(t, store, uid)
		if _, err := marked.Credit(domain.BalanceStandard, 999, "marker", ""); err != nil {
			t.Fatal(err)
		}
		data, err := marked.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		if err := store.SaveSnapshot(ctx, uid.Stream(), eventstore.Snapshot{Version: marked.Version(), Schema: domain.UserSnapshotSchema, Data: data}); err != nil {
			t.Fatal(err)
		}
		appendEvents(t, store, uid, signIns("late", 100000, 2)...) // the tail: late0 (ended), late1

		cold := newStreams(t, store, commands.StreamsConfig{SnapshotEvery: 50})
		got, err := commands.LoadUser(ctx, cold, uid)
		if err != nil {
			t.Fatal(err)
		}
		if got.Wallet().Standard != 999 {
			t.Errorf("cold load: wallet %+v, want the snapshot's 999 standard coins", got.Wallet())
		}
		if want := rehydrated(t, store, uid).Version(); got.Version() != want {
			t.Errorf("cold load: version %d, want %d", got.Version(), want)
		}
		if sessions := got.OpenSessions(time.Date(2026, 3, 11, 10, 45, 0, 0, time.UTC)); !slices.Equal(sessions, []string{"late1"}) {
			t.Errorf("cold load: open sessions %v, want the tail's late1", sessions)
		}
		// The warm process holds its own copy, and catches up with the tail from it.
		w, err := commands.LoadUser(ctx, warm, uid)
		if err != nil {
			t.Fatal(err)
		}
		wantSameUser(t, "warm load", w, rehydrated(t, store, uid))
	})
}

// TestUnusableSnapshotsAreIgnored: a snapshot that is absent, unreadable, of another schema,
// ahead of its stream or of another user never changes the user a load gives: the events rebuild
// them, and the next snapshot replaces the bad one.
func TestUnusableSnapshotsAreIgnored(t *testing.T) {
	t.Parallel()
	eachSnapshotStore(t, func(t *testing.T, store snapshotStore) {
		ctx := t.Context()
		other := domain.UserID("ID00000000D0")
		newHistory(t, store, other, 10)
		otherData, err := rehydrated(t, store, other).Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		for i, tc := range []struct {
			name string
			snap func(u *domain.User) eventstore.Snapshot
		}{
			{"absent", nil},
			{"unreadable", func(u *domain.User) eventstore.Snapshot {
				return eventstore.Snapshot{Version: u.Version(), Schema: domain.UserSnapshotSchema, Data: []byte(`{"schema":1,"uid":`)}
			}},
			{"another schema", func(u *domain.User) eventstore.Snapshot {
				data, _ := u.Snapshot()
				return eventstore.Snapshot{Version: u.Version(), Schema: domain.UserSnapshotSchema + 1, Data: data}
			}},
			{"ahead of the stream", func(u *domain.User) eventstore.Snapshot {
				data, _ := u.Snapshot()
				return eventstore.Snapshot{Version: u.Version() + 50, Schema: domain.UserSnapshotSchema, Data: data}
			}},
			{"another user's", func(u *domain.User) eventstore.Snapshot {
				return eventstore.Snapshot{Version: u.Version(), Schema: domain.UserSnapshotSchema, Data: otherData}
			}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				uid := domain.UserID(fmt.Sprintf("ID00000000E%d", i))
				newHistory(t, store, uid, 120)
				want := rehydrated(t, store, uid)
				if tc.snap != nil {
					if err := store.SaveSnapshot(ctx, uid.Stream(), tc.snap(want)); err != nil {
						t.Fatal(err)
					}
				}
				got, err := commands.LoadUser(ctx, newStreams(t, store, commands.StreamsConfig{SnapshotEvery: 50}), uid)
				if err != nil {
					t.Fatal(err)
				}
				wantSameUser(t, "cold load", got, want)
				// The load saved a good snapshot in place of the bad one.
				snap, ok, err := store.LoadSnapshot(ctx, uid.Stream())
				if err != nil || !ok {
					t.Fatalf("snapshot after the load: %v, %v", ok, err)
				}
				restored, err := domain.RestoreUser(snap.Data, snap.Version)
				if err != nil {
					t.Fatalf("the saved snapshot: %v", err)
				}
				wantSameUser(t, "saved snapshot", restored, want)
			})
		}
	})
}

// TestSnapshotsOff: with SnapshotEvery negative nothing is saved, and loads still give the user.
func TestSnapshotsOff(t *testing.T) {
	t.Parallel()
	eachSnapshotStore(t, func(t *testing.T, store snapshotStore) {
		uid := domain.UserID("ID00000000F1")
		newHistory(t, store, uid, 120)
		got, err := commands.LoadUser(t.Context(), newStreams(t, store, commands.StreamsConfig{SnapshotEvery: -1}), uid)
		if err != nil {
			t.Fatal(err)
		}
		wantSameUser(t, "load", got, rehydrated(t, store, uid))
		if _, ok, err := store.LoadSnapshot(t.Context(), uid.Stream()); ok || err != nil {
			t.Fatalf("a snapshot was saved: %v, %v", ok, err)
		}
	})
}

// replica is one process's command side over a shared store.
type replica struct {
	app   commands.Application
	clock *clock
}

func newReplica(t *testing.T, store snapshotStore, c *clock, signer *auth.Signer, cfg commands.Config) replica {
	t.Helper()
	hasher, sealer, _ := testSecrets(t, cheap, nil)
	cfg.Streams.Now = c.Now
	app, err := commands.New(commands.Deps{
		Store: store, Keys: store, Registry: domain.NewEventRegistry(), Hasher: hasher, Sealer: sealer,
		Tokens: signer, Notifier: &mailbox{}, Attempts: newLimiter(t),
	}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return replica{app: app, clock: c}
}

func newSigner(t *testing.T, c *clock) *auth.Signer {
	t.Helper()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, err := auth.NewSigner(priv, auth.SignerConfig{Issuer: "idlog", Audience: "idlog", Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	return signer
}

func (r replica) open(t *testing.T, uid, sid string) bool {
	t.Helper()
	_, ok, err := r.app.Sessions.Open(t.Context(), uid, sid)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

func (r replica) signIn(t *testing.T, email string) commands.SignInResult {
	t.Helper()
	res, err := r.app.Commands.SignIn.Handle(t.Context(), commands.SignIn{Login: email, Password: strongPassword})
	if err != nil {
		t.Fatalf("sign in %s: %v", email, err)
	}
	return res
}

// TestSignOutIsSeenAtOnceByEveryReplica: two processes over one store, each with the user cached;
// a sign-out on one is refused by the other's very next session check.
func TestSignOutIsSeenAtOnceByEveryReplica(t *testing.T) {
	t.Parallel()
	eachSnapshotStore(t, func(t *testing.T, store snapshotStore) {
		c := newClock()
		signer := newSigner(t, c)
		a := newReplica(t, store, c, signer, commands.Config{Streams: commands.StreamsConfig{SnapshotEvery: 2}})
		b := newReplica(t, store, c, signer, commands.Config{Streams: commands.StreamsConfig{SnapshotEvery: 2}})
		reg, err := a.app.Commands.RegisterUser.Handle(t.Context(), commands.RegisterUser{Email: "r@example.com", Password: strongPassword})
		if err != nil {
			t.Fatal(err)
		}
		uid := reg.Account.UID
		first, second := a.signIn(t, "r@example.com"), b.signIn(t, "r@example.com")
		for _, r := range []replica{a, b} { // both have the user cached now
			if !r.open(t, uid, first.SessionID) || !r.open(t, uid, second.SessionID) {
				t.Fatal("a new session is not open")
			}
		}
		if _, err := a.app.Commands.SignOut.Handle(t.Context(), commands.SignOut{UID: domain.UserID(uid), SessionID: first.SessionID}); err != nil {
			t.Fatal(err)
		}
		if b.open(t, uid, first.SessionID) {
			t.Error("the other replica still accepts the session signed out")
		}
		if !b.open(t, uid, second.SessionID) {
			t.Error("the other replica refuses the session still open")
		}
		// And the other way round, after a password change that ends every other session.
		if _, err := b.app.Commands.SignOut.Handle(t.Context(), commands.SignOut{UID: domain.UserID(uid), SessionID: second.SessionID}); err != nil {
			t.Fatal(err)
		}
		if a.open(t, uid, second.SessionID) {
			t.Error("the first replica still accepts the session signed out on the other")
		}
	})
}

// TestSessionLimitEndsTheOldestSession: a sign-in beyond the limit ends the oldest open session
// with an event, in the same append, and its token is refused from then on.
func TestSessionLimitEndsTheOldestSession(t *testing.T) {
	t.Parallel()
	eachSnapshotStore(t, func(t *testing.T, store snapshotStore) {
		c := newClock()
		r := newReplica(t, store, c, newSigner(t, c), commands.Config{Streams: commands.StreamsConfig{MaxSessions: 2}})
		reg, err := r.app.Commands.RegisterUser.Handle(t.Context(), commands.RegisterUser{Email: "cap@example.com", Password: strongPassword})
		if err != nil {
			t.Fatal(err)
		}
		uid := reg.Account.UID
		var sids []string
		for range 3 {
			sids = append(sids, r.signIn(t, "cap@example.com").SessionID)
			c.Advance(time.Second)
		}
		var tail []eventstore.Event
		for e, err := range store.ReadStream(t.Context(), domain.UserID(uid).Stream(), 0) {
			if err != nil {
				t.Fatal(err)
			}
			tail = append(tail, e)
		}
		tail = tail[len(tail)-2:]
		if tail[0].Type != "SessionEnded" || tail[1].Type != "SessionStarted" || tail[0].RecordedAt != tail[1].RecordedAt {
			t.Fatalf("the third sign-in appended %s, %s", tail[0].Type, tail[1].Type)
		}
		var ended domain.SessionEnded
		if err := json.Unmarshal(tail[0].Data, &ended); err != nil {
			t.Fatal(err)
		}
		if ended != (domain.SessionEnded{SessionID: sids[0], Reason: domain.SessionEndSessionLimit}) {
			t.Errorf("ended %+v, want the first session for the limit", ended)
		}
		for i, want := range []bool{false, true, true} {
			if got := r.open(t, uid, sids[i]); got != want {
				t.Errorf("session %d open: %v, want %v", i, got, want)
			}
		}
	})
}
