package personaldata_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/migrations"
	"github.com/idlog/idlog/personaldata"
)

// processes returns n sealing stores over one backend with one server secret, as n processes of
// one deployment would be: each with a key cache of its own.
func processes(t *testing.T, b backend, n int) []*personaldata.Store {
	t.Helper()
	secret := make([]byte, 32)
	rand.Read(secret)
	out := make([]*personaldata.Store, n)
	for i := range out {
		keys, err := personaldata.NewKeys(b.db, b.dialect, secret)
		if err != nil {
			t.Fatal(err)
		}
		if out[i], err = personaldata.Wrap(personaldata.Options{Store: b.store, Keys: keys, Registry: domain.NewEventRegistry(), Secret: secret}); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// keyRows returns how many keys the user has stored, and how many of them are erased. SQLite
// keeps a new key in the row of the user's stream, PostgreSQL a row of personal_data_keys.
func keyRows(t *testing.T, b backend, uid domain.UserID) (rows, erased int) {
	t.Helper()
	err := b.db.QueryRowContext(t.Context(), b.db.Rebind(`SELECT count(*), count(erased_at) FROM personal_data_keys WHERE uid = ?`), string(uid)).Scan(&rows, &erased)
	if err != nil {
		t.Fatal(err)
	}
	if b.dialect == migrations.SQLite {
		var inStream int
		if err := b.db.QueryRowContext(t.Context(), `SELECT count(*) FROM streams WHERE stream_id = ? AND data_key IS NOT NULL`, uid.Stream()).Scan(&inStream); err != nil {
			t.Fatal(err)
		}
		rows += inStream
	}
	return rows, erased
}

func dataUpdate(uid domain.UserID, note string) eventstore.Append {
	return eventstore.Append{Stream: uid.Stream(), Expected: eventstore.Any,
		Events: []eventstore.NewEvent{{Type: "UserDataUpdated", SchemaVersion: 1, Data: json.RawMessage(`{"data":{"note":"` + note + `"}}`)}}}
}

// A user's data key is written with their first append: a registration that fails leaves no key
// (and no key in the cache), the one that succeeds leaves exactly one, which other processes open.
func TestDataKeyWrittenWithTheFirstAppend(t *testing.T) {
	t.Parallel()
	for name, open := range backends(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			b := open(t)
			p := processes(t, b, 2)
			holder, uid := newUID(), newUID()
			email := strings.ToLower(string(holder)) + "@example.com"
			if _, err := p[0].Append(ctx, register(holder, email)); err != nil {
				t.Fatal(err)
			}
			if _, err := p[0].Append(ctx, register(uid, email)); !errors.Is(err, eventstore.ErrKeyTaken) {
				t.Fatalf("registration with a taken email = %v, want ErrKeyTaken", err)
			}
			if rows, _ := keyRows(t, b, uid); rows != 0 {
				t.Fatalf("a failed registration left %d key rows", rows)
			}
			if _, err := p[0].Append(ctx, register(uid, strings.ToLower(string(uid))+"@example.com")); err != nil {
				t.Fatal(err)
			}
			if rows, _ := keyRows(t, b, uid); rows != 1 {
				t.Fatalf("%d key rows after the registration, want 1", rows)
			}
			if _, err := p[0].Append(ctx, dataUpdate(uid, "mauve")); err != nil {
				t.Fatal(err)
			}
			var got []string
			for e, err := range p[1].ReadStream(ctx, uid.Stream(), 0) {
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, string(e.Data))
			}
			if len(got) != 2 || !strings.Contains(got[0], `"erin"`) || !strings.Contains(got[1], "mauve") {
				t.Errorf("another process reads %q", got)
			}
		})
	}
}

// A registration retried (same event ids) by a process that did not see the first attempt
// commit is answered with the original result, and that process then seals with the stored key,
// not the one it made for the retry.
func TestRetriedRegistrationUsesTheStoredKey(t *testing.T) {
	t.Parallel()
	for name, open := range backends(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			b := open(t)
			p := processes(t, b, 3)
			uid := newUID()
			a := register(uid, strings.ToLower(string(uid))+"@example.com")
			a.Events[0].ID = uuid.Must(uuid.NewV7())
			orig, err := p[0].Append(ctx, a)
			if err != nil {
				t.Fatal(err)
			}
			again, err := p[1].Append(ctx, a)
			if err != nil || again.LastPosition != orig.LastPosition {
				t.Fatalf("retry = %+v, %v, want the original %+v", again, err, orig)
			}
			if _, err := p[1].Append(ctx, dataUpdate(uid, "mauve")); err != nil {
				t.Fatal(err)
			}
			n := 0
			for e, err := range p[2].ReadStream(ctx, uid.Stream(), 0) {
				if err != nil {
					t.Fatalf("reading the user's events: %v", err)
				}
				n++
				if strings.Contains(string(e.Data), "pd1:") {
					t.Errorf("event %d not opened: %s", n, e.Data)
				}
			}
			if n != 2 {
				t.Errorf("%d events, want 2", n)
			}
			if rows, _ := keyRows(t, b, uid); rows != 1 {
				t.Errorf("%d key rows, want 1", rows)
			}
		})
	}
}

// Concurrent first appends for one user, from processes with empty caches and on a path that the
// stream does not serialise (expected version Any): one key, and every append sealed with it.
func TestConcurrentFirstAppendsShareOneKey(t *testing.T) {
	t.Parallel()
	for name, open := range backends(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			b := open(t)
			const n = 6
			p := processes(t, b, n+1)
			uid := newUID()
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					if _, err := p[i].Append(ctx, dataUpdate(uid, "note"+string(rune('a'+i)))); err != nil {
						t.Errorf("process %d: %v", i, err)
					}
				}()
			}
			close(start)
			wg.Wait()
			if rows, _ := keyRows(t, b, uid); rows != 1 {
				t.Errorf("%d key rows, want 1", rows)
			}
			count := 0
			for e, err := range p[n].ReadStream(ctx, uid.Stream(), 0) {
				if err != nil {
					t.Fatalf("reading the user's events: %v", err)
				}
				if !strings.Contains(string(e.Data), `"note`) {
					t.Errorf("event not opened: %s", e.Data)
				}
				count++
			}
			if count != n {
				t.Errorf("%d events, want %d", count, n)
			}
		})
	}
}

// An erased user's key row stays erased: neither a registration under their id nor an append from
// a process that never saw them writes a key, and both fail.
func TestErasedKeyStaysErased(t *testing.T) {
	t.Parallel()
	for name, open := range backends(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			b := open(t)
			p := processes(t, b, 2)
			uid := newUID()
			if _, err := p[0].Append(ctx, register(uid, strings.ToLower(string(uid))+"@example.com")); err != nil {
				t.Fatal(err)
			}
			if err := p[0].Erase(ctx, uid); err != nil {
				t.Fatal(err)
			}
			if _, err := p[1].Append(ctx, dataUpdate(uid, "mauve")); !errors.Is(err, personaldata.ErrErased) {
				t.Errorf("append to an erased user = %v, want ErrErased", err)
			}
			// A registration under an erased id that never had events (the erasure of an unknown
			// user marks it erased all the same).
			fresh := newUID()
			if err := p[0].Erase(ctx, fresh); err != nil {
				t.Fatal(err)
			}
			if _, err := p[1].Append(ctx, register(fresh, strings.ToLower(string(fresh))+"@example.com")); !errors.Is(err, personaldata.ErrErased) {
				t.Errorf("registration under an erased id = %v, want ErrErased", err)
			}
			for _, u := range []domain.UserID{uid, fresh} {
				if rows, erased := keyRows(t, b, u); rows != 1 || erased != 1 {
					t.Errorf("user %s: %d key rows, %d erased; want 1 erased", u, rows, erased)
				}
			}
			var events int
			for range b.store.ReadStream(ctx, fresh.Stream(), 0) {
				events++
			}
			if events != 0 {
				t.Errorf("the refused registration stored %d events", events)
			}
		})
	}
}

// A batch (users import) stores each new user's key once, with the batch: a batch that fails
// leaves none, one that succeeds leaves one per user, even for a user with two appends in it.
func TestBatchStoresOneKeyPerUser(t *testing.T) {
	t.Parallel()
	for name, open := range backends(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			b := open(t)
			p := processes(t, b, 2)
			holder, u1, u2 := newUID(), newUID(), newUID()
			taken := strings.ToLower(string(holder)) + "@example.com"
			if _, err := p[0].Append(ctx, register(holder, taken)); err != nil {
				t.Fatal(err)
			}
			second := dataUpdate(u1, "mauve")
			second.Expected = eventstore.Exactly(1)
			if _, err := p[0].AppendBatch(ctx, []eventstore.Append{register(u1, strings.ToLower(string(u1))+"@example.com"), second, register(u2, taken)}); !errors.Is(err, eventstore.ErrKeyTaken) {
				t.Fatalf("batch with a taken email = %v, want ErrKeyTaken", err)
			}
			for _, u := range []domain.UserID{u1, u2} {
				if rows, _ := keyRows(t, b, u); rows != 0 {
					t.Errorf("a failed batch left %d key rows of %s", rows, u)
				}
			}
			if _, err := p[0].AppendBatch(ctx, []eventstore.Append{register(u1, strings.ToLower(string(u1))+"@example.com"), second, register(u2, strings.ToLower(string(u2))+"@example.com")}); err != nil {
				t.Fatal(err)
			}
			for _, u := range []domain.UserID{u1, u2} {
				if rows, _ := keyRows(t, b, u); rows != 1 {
					t.Errorf("%d key rows of %s, want 1", rows, u)
				}
			}
			n := 0
			for e, err := range p[1].ReadStream(ctx, u1.Stream(), 0) {
				if err != nil {
					t.Fatalf("reading the imported user: %v", err)
				}
				if strings.Contains(string(e.Data), "pd1:") {
					t.Errorf("event not opened: %s", e.Data)
				}
				n++
			}
			if n != 2 {
				t.Errorf("%d events, want 2", n)
			}
		})
	}
}

// The stream the event store keeps a data key with is the user's own: a key appended to it is
// found by the user's id.
func TestDataKeyStreamIsTheUsersStream(t *testing.T) {
	uid := newUID()
	if got := eventstore.DataKeyStream(string(uid)); got != uid.Stream() {
		t.Fatalf("eventstore.DataKeyStream(%q) = %q, want the user's stream %q", uid, got, uid.Stream())
	}
}

// A SQLite store keeps a new key in the row of the user's stream; a key kept before that, in
// personal_data_keys, still opens the user's data, and erasing the user destroys it there.
func TestSQLiteKeyKeptBeforeStreamKeys(t *testing.T) {
	t.Parallel()
	b := backends(t)["sqlite"](t)
	ctx := t.Context()
	p := processes(t, b, 2)
	uid := newUID()
	if _, err := p[0].Append(ctx, register(uid, strings.ToLower(string(uid))+"@example.com")); err != nil {
		t.Fatal(err)
	}
	// Where an older store kept it.
	if _, err := b.db.ExecContext(ctx, `INSERT INTO personal_data_keys (uid, wrapped) SELECT ?, data_key FROM streams WHERE stream_id = ?`, string(uid), uid.Stream()); err != nil {
		t.Fatal(err)
	}
	if _, err := b.db.ExecContext(ctx, `UPDATE streams SET data_key = NULL WHERE stream_id = ?`, uid.Stream()); err != nil {
		t.Fatal(err)
	}
	if e := only(t, p[1].ReadStream(ctx, uid.Stream(), 0)); !strings.Contains(string(e.Data), `"erin"`) {
		t.Fatalf("the user's registration read with the older key = %s", e.Data)
	}
	if _, err := p[1].Append(ctx, dataUpdate(uid, "mauve")); err != nil {
		t.Fatal(err)
	}
	if rows, _ := keyRows(t, b, uid); rows != 1 {
		t.Fatalf("%d keys stored after an append with the older key, want 1", rows)
	}
	if err := p[1].Keys().Erase(ctx, string(uid)); err != nil {
		t.Fatal(err)
	}
	if rows, erased := keyRows(t, b, uid); rows != 1 || erased != 1 {
		t.Fatalf("after erasure: %d keys, %d erased, want the one erased", rows, erased)
	}
	var left int
	if err := b.db.QueryRowContext(ctx, `SELECT count(*) FROM personal_data_keys WHERE wrapped IS NOT NULL`).Scan(&left); err != nil || left != 0 {
		t.Fatalf("%d wrapped keys left (%v)", left, err)
	}
}

// dataKeyRecorder passes appends on to a store that keeps data keys, recording the keys they
// carry.
type dataKeyRecorder struct {
	eventstore.Store
	mu      sync.Mutex
	carried []string
}

func (r *dataKeyRecorder) Append(ctx context.Context, a eventstore.Append) (eventstore.AppendResult, error) {
	if a.DataKey != nil {
		r.mu.Lock()
		r.carried = append(r.carried, a.DataKey.UID)
		r.mu.Unlock()
	}
	return r.Store.Append(ctx, a)
}

func (r *dataKeyRecorder) KeepsDataKeys() bool { return true }

// On PostgreSQL a new user's id comes with their data key stored already, so the registration's
// append carries none; the key opens in other processes and is destroyed by an erasure like any
// other. An id given back is drawn again. SQLite stores no key ahead (the registration keeps it in
// the stream's row, which it writes anyway).
func TestNewUserIDsComeWithTheirKeysStored(t *testing.T) {
	t.Parallel()
	for name, open := range backends(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			b := open(t)
			rec := &dataKeyRecorder{Store: b.store}
			secret := make([]byte, 32)
			rand.Read(secret)
			p := wrapWith(t, backend{rec, b.db, b.dialect}, secret)
			ahead := b.dialect == migrations.Postgres
			wantAhead := 0 // key rows of a drawn id
			if ahead {
				wantAhead = 1
			}
			seen := map[domain.UserID]bool{}
			var ids []domain.UserID
			for range 100 {
				uid := p.NewUserID(ctx)
				if _, err := domain.ParseUserID(string(uid)); err != nil || seen[uid] {
					t.Fatalf("drew %q (%v), seen before: %v", uid, err, seen[uid])
				}
				seen[uid] = true
				ids = append(ids, uid)
				if rows, _ := keyRows(t, b, uid); rows != wantAhead {
					t.Fatalf("a drawn id has %d key rows, want them stored ahead: %v", rows, ahead)
				}
			}
			uid := ids[0]
			if _, err := p.Append(ctx, register(uid, "ahead@example.com")); err != nil {
				t.Fatal(err)
			}
			if carried := len(rec.carried); ahead && carried != 0 || !ahead && carried != 1 {
				t.Fatalf("the registration carried %d data keys", carried)
			}
			if rows, _ := keyRows(t, b, uid); rows != 1 {
				t.Fatalf("the registered user has %d key rows, want 1", rows)
			}
			stored := only(t, b.store.ReadStream(ctx, uid.Stream(), 0))
			if strings.Contains(string(stored.Data), "ahead@example.com") {
				t.Fatalf("stored in plain: %s", stored.Data)
			}
			// A process of the same deployment that never saw the id opens the registration.
			if got := only(t, wrapWith(t, b, secret).ReadStream(ctx, uid.Stream(), 0)); !strings.Contains(string(got.Data), `"ahead@example.com"`) {
				t.Fatalf("another process reads %s", got.Data)
			}
			if err := p.Erase(ctx, uid); err != nil {
				t.Fatal(err)
			}
			if got := only(t, wrapWith(t, b, secret).ReadStream(ctx, uid.Stream(), 0)); strings.Contains(string(got.Data), "ahead@") || !strings.Contains(string(got.Data), domain.Erased) {
				t.Fatalf("after the erasure another process reads %s", got.Data)
			}
			if rows, erased := keyRows(t, b, uid); rows != 1 || erased != 1 {
				t.Fatalf("after the erasure: %d key rows, %d erased", rows, erased)
			}
			if ahead {
				p.UnusedUserID(ids[1])
				if again := p.NewUserID(ctx); again != ids[1] {
					t.Fatalf("after giving back %s drew %s", ids[1], again)
				}
			}
		})
	}
}

// A batch of keys stored ahead (PostgreSQL) skips the ids that are someone's already (40-bit ids
// collide): a user with a key, an erased one, and one whose events were written before sealing
// existed, without a key. Their keys stay as they were.
func TestKeysAheadSkipTakenIDs(t *testing.T) {
	t.Parallel()
	for name, open := range backends(t) {
		if name != "postgres" {
			continue
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			b := open(t)
			secret := make([]byte, 32)
			rand.Read(secret)
			s := wrapWith(t, b, secret)
			keyed, erased, keyless, free := newUID(), newUID(), newUID(), newUID()
			if _, err := s.Append(ctx, register(keyed, strings.ToLower(string(keyed))+"@example.com")); err != nil {
				t.Fatal(err)
			}
			if err := s.Keys().Erase(ctx, string(erased)); err != nil {
				t.Fatal(err)
			}
			if _, err := b.store.Append(ctx, register(keyless, strings.ToLower(string(keyless))+"@example.com")); err != nil {
				t.Fatal(err)
			}
			before := only(t, s.ReadStream(ctx, keyed.Stream(), 0))
			stored, err := s.Keys().StoreAheadFor(ctx, []string{string(keyed), string(erased), string(keyless), string(free)})
			if err != nil {
				t.Fatal(err)
			}
			if len(stored) != 1 || stored[0] != string(free) {
				t.Fatalf("stored ahead %v, want only %s", stored, free)
			}
			if rows, _ := keyRows(t, b, keyless); rows != 0 {
				t.Fatalf("the keyless user got %d key rows", rows)
			}
			if after := only(t, wrapWith(t, b, secret).ReadStream(ctx, keyed.Stream(), 0)); string(after.Data) != string(before.Data) {
				t.Fatalf("the keyed user's registration reads %s, was %s", after.Data, before.Data)
			}
		})
	}
}
