package personaldata

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"hash"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/idlog/idlog/auth"
	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/migrations"
)

// ErrErased: the user's data key was destroyed; their personal data cannot be sealed or opened.
var ErrErased = errors.New("personaldata: the user's personal data is erased")

// Keys keeps the users' data keys in the store's database. It is safe for concurrent use.
//
// Keys are cached in memory for CacheTTL: another replica that erases a user stops this one from
// opening their data within that time; the replica that erases stops at once.
type Keys struct {
	db      *sqlx.DB
	dialect migrations.Dialect
	wrap    *auth.Sealer // opens keys stored wrapped (before seeds, see newKey)
	seeds   sync.Pool    // of HMAC-SHA-256 keyed to derive data keys from their seeds, reset after use
	ttl     time.Duration

	mu    sync.Mutex
	cache map[string]cachedKey
	ahead ahead // new users' ids with their keys stored (ahead.go)
}

type cachedKey struct {
	sealer *auth.Sealer // nil: erased
	known  bool         // a row exists (a user without one has no sealed data)
	at     time.Time
}

// CacheTTL is how long a data key (or the fact that it was destroyed) stays in a process's memory.
const CacheTTL = 30 * time.Second

// maxCached bounds the cache; a full cache starts again empty.
const maxCached = 100000

// derive makes a key of its own for one purpose from the server's secret key.
func derive(secret []byte, purpose string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("idlog personal data: " + purpose))
	return m.Sum(nil)
}

// NewKeys returns the data keys kept in db (writable: on SQLite, not the store's read-only pool),
// wrapped with a key derived from secret (the server's 32-byte secret key).
func NewKeys(db *sqlx.DB, dialect migrations.Dialect, secret []byte) (*Keys, error) {
	if db == nil {
		panic("personaldata: NewKeys needs a database")
	}
	if len(secret) != auth.KeySize {
		return nil, fmt.Errorf("personaldata: secret key of %d bytes, want %d", len(secret), auth.KeySize)
	}
	wrap, err := auth.NewSealer(derive(secret, "key wrapping"))
	if err != nil {
		return nil, err
	}
	k := &Keys{db: db, dialect: dialect, wrap: wrap, ttl: CacheTTL, cache: map[string]cachedKey{}}
	seedKey := derive(secret, "data key seeds")
	k.seeds.New = func() any { return hmac.New(sha256.New, seedKey) }
	return k, nil
}

// seedForm starts a stored key that is a seed (see newKey); a wrapped key starts with
// auth.Sealer's format version, 1.
const seedForm = 2

// seedBytes is the size of a data key's seed: 128 bits, which the server's secret key alone
// does not give back.
const seedBytes = 16

// checkBytes is the size of the check value stored after a seed.
const checkBytes = 4

// newKey makes a new data key for the user and the form it is stored in: seedForm, a random
// 128-bit seed and a 32-bit check value. The key is HMAC-SHA-256, keyed with a key derived from
// the server's secret key, of the user id and the seed: as with a wrapped key, reading the data
// takes both the stored seed and the server's secret, destroying the seed destroys the key, and a
// seed copied to another user gives another key. 21 bytes instead of a wrapped key's 61: on
// SQLite the key lives in the row of the user's stream, whose size cost sealed registrations
// about 3% of their throughput with 8 writers.
func (k *Keys) newKey(uid string) (*auth.Sealer, []byte, error) {
	stored := make([]byte, 1+seedBytes, 1+seedBytes+checkBytes)
	stored[0] = seedForm
	rand.Read(stored[1:])
	key, check := k.fromSeed(uid, stored[1:])
	s, err := auth.NewSealer(key)
	return s, append(stored, check...), err
}

// fromSeed derives the data key of the user from seed, and the seed's check value.
func (k *Keys) fromSeed(uid string, seed []byte) (key, check []byte) {
	m := k.seeds.Get().(hash.Hash)
	defer k.seeds.Put(m)
	out := make([]byte, 0, 2*sha256.Size)
	for _, label := range []string{"key\x00", "check\x00"} {
		m.Reset() // back to its keyed state
		m.Write([]byte(label + uid + "\x00"))
		m.Write(seed)
		out = m.Sum(out)
	}
	return out[:sha256.Size:sha256.Size], out[sha256.Size : sha256.Size+checkBytes]
}

// openStored returns the data key of the user from its stored form: a seed, or a key wrapped
// with the server's secret key (stored before seeds).
func (k *Keys) openStored(uid string, stored []byte) ([]byte, error) {
	if len(stored) == 1+seedBytes+checkBytes && stored[0] == seedForm {
		key, check := k.fromSeed(uid, stored[1:1+seedBytes])
		if !hmac.Equal(check, stored[1+seedBytes:]) {
			return nil, errors.New("personaldata: the check value of the seed does not match")
		}
		return key, nil
	}
	return k.wrap.Open(stored, []byte(uid))
}

func (k *Keys) cached(uid string) (cachedKey, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	c, ok := k.cache[uid]
	if ok && time.Since(c.at) > k.ttl {
		delete(k.cache, uid)
		return cachedKey{}, false
	}
	return c, ok
}

func (k *Keys) remember(uid string, c cachedKey) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.rememberLocked(uid, c)
}

// rememberLocked is remember with k.mu held.
func (k *Keys) rememberLocked(uid string, c cachedKey) {
	if len(k.cache) >= maxCached {
		k.cache = map[string]cachedKey{}
	}
	c.at = time.Now()
	k.cache[uid] = c
}

// forKey is the sealer of the user's data key: created when create is set and the user has none.
// ErrErased if the key was destroyed; (nil, nil) if the user has no key and create is false.
func (k *Keys) forKey(ctx context.Context, uid string, create bool) (*auth.Sealer, error) {
	if c, ok := k.cached(uid); ok && (c.known || !create) {
		if c.known && c.sealer == nil {
			return nil, ErrErased
		}
		return c.sealer, nil
	}
	if create {
		s, stored, err := k.newKey(uid)
		if err != nil {
			return nil, err
		}
		res, err := k.insert(ctx, uid, stored)
		if err != nil {
			return nil, fmt.Errorf("personaldata: create the data key of %s: %w", uid, err)
		}
		if n, err := res.RowsAffected(); err == nil && n == 1 {
			// Ours is the key: no need to read it back.
			k.remember(uid, cachedKey{sealer: s, known: true})
			return s, nil
		}
	}
	wrapped, found, err := k.read(ctx, uid)
	if err != nil {
		return nil, fmt.Errorf("personaldata: read the data key of %s: %w", uid, err)
	}
	if !found {
		k.remember(uid, cachedKey{})
		return nil, nil
	}
	if wrapped == nil {
		k.remember(uid, cachedKey{known: true})
		return nil, ErrErased
	}
	key, err := k.openStored(uid, wrapped)
	if err != nil {
		return nil, fmt.Errorf("personaldata: unwrap the data key of %s (another server secret key?): %w", uid, err)
	}
	s, err := auth.NewSealer(key)
	if err != nil {
		return nil, err
	}
	k.remember(uid, cachedKey{sealer: s, known: true})
	return s, nil
}

// read returns the user's stored wrapped key: found false if they have none, wrapped nil if it
// was erased. On SQLite the store keeps a new key in the row of the user's stream (migration
// 00280); a row of personal_data_keys (an older key, or an erasure) comes first.
func (k *Keys) read(ctx context.Context, uid string) (wrapped []byte, found bool, err error) {
	if k.dialect == migrations.SQLite {
		var row bool
		var inStream []byte
		err := k.db.QueryRowContext(ctx, `SELECT k.uid IS NOT NULL, k.wrapped, s.data_key FROM (SELECT 1)
			LEFT JOIN personal_data_keys k ON k.uid = ? LEFT JOIN streams s ON s.stream_id = ?`,
			uid, eventstore.DataKeyStream(uid)).Scan(&row, &wrapped, &inStream)
		if err != nil || row {
			return wrapped, row, err
		}
		return inStream, inStream != nil, nil
	}
	err = k.db.QueryRowContext(ctx, `SELECT wrapped FROM personal_data_keys WHERE uid = $1`, uid).Scan(&wrapped)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	return wrapped, err == nil, err
}

// forAppend returns the sealer of the user's data key for an append whose store writes new keys
// in the append's transaction (eventstore.DataKeyKeeper): the known key, or a new one and its
// wrapped form for the append to carry (newKey not nil), not cached until the append commits
// (keep). fresh says the append creates the stream (NoStream): the user is then taken to have no
// key without reading, and a wrong guess comes back as eventstore.ErrDataKeyExists (the caller
// forgets the user and asks again with fresh false). ErrErased if the key was destroyed.
func (k *Keys) forAppend(ctx context.Context, uid string, fresh bool) (*auth.Sealer, *eventstore.DataKey, error) {
	if c, ok := k.cached(uid); ok && c.known {
		if c.sealer == nil {
			return nil, nil, ErrErased
		}
		return c.sealer, nil, nil
	}
	if !fresh {
		if s, err := k.forKey(ctx, uid, false); err != nil || s != nil {
			return s, nil, err
		}
	}
	s, stored, err := k.newKey(uid)
	if err != nil {
		return nil, nil, err
	}
	return s, &eventstore.DataKey{UID: uid, Wrapped: stored}, nil
}

// keep caches a new key once the append that stored it has committed.
func (k *Keys) keep(uid string, s *auth.Sealer) {
	k.remember(uid, cachedKey{sealer: s, known: true})
}

// Erase destroys the user's data key, for good: what it sealed can no longer be read. A user
// without a key (only events from before sealing existed) is marked erased all the same, so
// readers hide their personal fields. Erasing twice changes nothing.
func (k *Keys) Erase(ctx context.Context, uid string) error {
	now := time.Now().UTC()
	var at any = now
	if k.dialect == migrations.SQLite {
		at = now.Format("2006-01-02T15:04:05.000Z")
	}
	conn, err := k.db.Connx(ctx)
	if err != nil {
		return fmt.Errorf("personaldata: destroy the data key of %s: %w", uid, err)
	}
	defer conn.Close()
	if k.dialect == migrations.SQLite {
		// The destruction must be on disk when Erase returns (see insert).
		if _, err := conn.ExecContext(ctx, `PRAGMA synchronous = FULL`); err != nil {
			return fmt.Errorf("personaldata: destroy the data key of %s: %w", uid, err)
		}
	}
	tx, err := conn.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("personaldata: destroy the data key of %s: %w", uid, err)
	}
	defer tx.Rollback()
	if k.dialect == migrations.SQLite {
		// The key a SQLite store wrote with the user's stream (see read).
		if _, err := tx.ExecContext(ctx, `UPDATE streams SET data_key = NULL WHERE stream_id = ?`, eventstore.DataKeyStream(uid)); err != nil {
			return fmt.Errorf("personaldata: destroy the data key of %s: %w", uid, err)
		}
	}
	_, err = tx.ExecContext(ctx, k.db.Rebind(`INSERT INTO personal_data_keys (uid, wrapped, erased_at) VALUES (?, NULL, ?)
		ON CONFLICT (uid) DO UPDATE SET wrapped = NULL, erased_at = COALESCE(personal_data_keys.erased_at, excluded.erased_at)`), uid, at)
	if err != nil {
		return fmt.Errorf("personaldata: destroy the data key of %s: %w", uid, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("personaldata: destroy the data key of %s: %w", uid, err)
	}
	k.remember(uid, cachedKey{known: true})
	return nil
}

// IsErased reports whether the user's data key was destroyed.
func (k *Keys) IsErased(ctx context.Context, uid string) (bool, error) {
	_, err := k.forKey(ctx, uid, false)
	if errors.Is(err, ErrErased) {
		return true, nil
	}
	return false, err
}

// insert stores a new wrapped key unless the user has one, for a store that cannot write it in
// the append's transaction (not an eventstore.DataKeyKeeper). It commits without waiting for the disk:
// the key is written before the append that uses it, and the log is sequential (PostgreSQL's WAL,
// SQLite's WAL file), so the append's own durable commit makes the key durable too; a crash before
// it loses both, and the append was never acknowledged. This saves a second flush per new user.
func (k *Keys) insert(ctx context.Context, uid string, wrapped []byte) (sql.Result, error) {
	if k.dialect == migrations.Postgres {
		// set_config(..., true) lasts until the end of this statement's own transaction, its commit
		// included.
		return k.db.ExecContext(ctx, `WITH async AS (SELECT set_config('synchronous_commit', 'off', true))
			INSERT INTO personal_data_keys (uid, wrapped) SELECT $1, $2 FROM async ON CONFLICT (uid) DO NOTHING`, uid, wrapped)
	}
	conn, err := k.db.Connx(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `PRAGMA synchronous = NORMAL`); err != nil {
		return nil, err
	}
	return conn.ExecContext(ctx, `INSERT INTO personal_data_keys (uid, wrapped) VALUES (?, ?) ON CONFLICT (uid) DO NOTHING`, uid, wrapped)
}

// forget drops what the cache holds of the user.
func (k *Keys) forget(uid string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.cache, uid)
}
