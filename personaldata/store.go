package personaldata

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"iter"
	"strings"
	"sync"

	"github.com/jmoiron/sqlx"

	"github.com/idlog/idlog/auth"
	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/follower"
)

// Options configure Wrap.
type Options struct {
	// Store is the event store whose personal data is sealed. Its optional capabilities
	// (eventstore.Checkpoints, KeyOwners, Snapshots, Scanner) are passed through.
	Store eventstore.Store
	// Keys keeps the users' data keys.
	Keys *Keys
	// Registry names the personal fields of each event type (domain.PersonalTag).
	Registry *domain.Registry
	// Secret is the server's 32-byte secret key; the hashes of unique keys are keyed with a key
	// derived from it.
	Secret []byte
}

// Store seals personal data on the way into an event store and opens it on the way out. It
// implements eventstore.Store, Checkpoints, KeyOwners, Snapshots and Scanner; a capability the
// wrapped store lacks fails (KeyOwner, Checkpoint) or does nothing (snapshots). Readers that must
// see the stored bytes (the audit chain and tree) read the wrapped store, Unwrap.
type Store struct {
	inner   eventstore.Store
	keys    *Keys
	codec   codec
	hashKey []byte
	hashers sync.Pool // of HMAC-SHA-256 keyed with hashKey, reset after use
}

// Wrap returns the sealing store over o.Store.
func Wrap(o Options) (*Store, error) {
	if o.Store == nil || o.Keys == nil || o.Registry == nil {
		panic("personaldata: Wrap needs a store, keys and an event registry")
	}
	if len(o.Secret) != 32 {
		return nil, fmt.Errorf("personaldata: secret key of %d bytes, want 32", len(o.Secret))
	}
	s := &Store{inner: o.Store, keys: o.Keys, codec: codec{reg: o.Registry}, hashKey: derive(o.Secret, "unique keys")}
	s.hashers.New = func() any { return hmac.New(sha256.New, s.hashKey) }
	return s, nil
}

// Unwrap returns the store underneath, which holds the sealed bytes.
func (s *Store) Unwrap() eventstore.Store { return s.inner }

// Keys returns the data keys the store seals with.
func (s *Store) Keys() *Keys { return s.keys }

// userOf returns the user id of a user stream, ok false for other streams (which hold no
// personal data of one user, and are stored as they are).
func userOf(stream string) (string, bool) {
	uid, ok := strings.CutPrefix(stream, domain.UserStreamPrefix)
	return uid, ok && uid != ""
}

// hashedKeyBytes is how much of a unique key's HMAC-SHA-256 is stored: 128 bits, which keeps
// a collision (two values taken for one) at odds of 2^-64 even among 2^32 keys, and the index
// small (keys of about 30 characters, against 70 for the full digest in hex).
const hashedKeyBytes = 16

// HashKey returns the stored form of a unique key: its kind (the text before the first ':')
// followed by '#' and base64url (unpadded) of the first 128 bits of the HMAC-SHA-256 of the
// whole key. A key without ':' is stored as is.
func (s *Store) HashKey(key string) string {
	kind, _, ok := strings.Cut(key, ":")
	if !ok {
		return key
	}
	m := s.hashers.Get().(hash.Hash)
	m.Write([]byte(key))
	var sum [sha256.Size]byte
	m.Sum(sum[:0])
	m.Reset() // back to its keyed state
	s.hashers.Put(m)
	return shortHashedKey(kind, sum[:hashedKeyBytes])
}

// shortHashedKey is the stored form of a key of kind whose digest (cut to 128 bits) is given.
func shortHashedKey(kind string, digest []byte) string {
	out := make([]byte, 0, len(kind)+1+base64.RawURLEncoding.EncodedLen(len(digest)))
	out = append(append(out, kind...), '#')
	return string(base64.RawURLEncoding.AppendEncode(out, digest))
}

// Append seals the personal data of a user stream's events with the user's data key (created at
// the user's first append, in its transaction) and claims and releases unique keys by their
// hashes. Appending to an erased user's stream fails with ErrErased.
func (s *Store) Append(ctx context.Context, a eventstore.Append) (eventstore.AppendResult, error) {
	for attempt := 0; ; attempt++ {
		sealed, plain, fresh, err := s.seal(ctx, a, attempt == 0, nil)
		if err != nil {
			return eventstore.AppendResult{}, err
		}
		res, err := s.inner.Append(ctx, sealed)
		if s.retryWithStoredKeys(err, attempt, []eventstore.Append{sealed}) {
			continue
		}
		if err == nil {
			s.keepNew(fresh)
		}
		return res, plainKeyTaken(err, plain)
	}
}

// retryWithStoredKeys reports, after an append (or batch) failed with err, whether to seal again
// because a new data key it carried met a stored one (another append's, or an erased one): the
// users are forgotten, so the next seal reads their stored keys.
func (s *Store) retryWithStoredKeys(err error, attempt int, sealed []eventstore.Append) bool {
	if !errors.Is(err, eventstore.ErrDataKeyExists) || attempt >= 2 {
		return false
	}
	for _, a := range sealed {
		if a.DataKey != nil {
			s.keys.forget(a.DataKey.UID)
		}
	}
	return true
}

// keepNew caches the data keys an append created, once it committed.
func (s *Store) keepNew(fresh map[string]*auth.Sealer) {
	for uid, sealer := range fresh {
		s.keys.keep(uid, sealer)
	}
}

// AppendBatch makes many appends in one transaction, all or none, sealed as Append seals each
// (users import); the wrapped store must batch (postgres.Store, sqlite.Store).
func (s *Store) AppendBatch(ctx context.Context, batch []eventstore.Append) ([]eventstore.AppendResult, error) {
	b, ok := s.inner.(interface {
		AppendBatch(context.Context, []eventstore.Append) ([]eventstore.AppendResult, error)
	})
	if !ok {
		return nil, errNotSupported
	}
	for attempt := 0; ; attempt++ {
		sealed := make([]eventstore.Append, len(batch))
		plain := make(map[string]string)
		fresh := make(map[string]*auth.Sealer) // one new key per user for the whole batch
		for i, a := range batch {
			var p map[string]string
			var err error
			if sealed[i], p, _, err = s.seal(ctx, a, attempt == 0, fresh); err != nil {
				return nil, err
			}
			for h, k := range p {
				plain[h] = k
			}
		}
		res, err := b.AppendBatch(ctx, sealed)
		if s.retryWithStoredKeys(err, attempt, sealed) {
			continue
		}
		if err == nil {
			s.keepNew(fresh)
		}
		return res, plainKeyTaken(err, plain)
	}
}

// KeyOwners answers KeyOwner for many keys in one query, by their hashes (users import); the
// wrapped store must answer in bulk. The map is keyed by the plain keys.
func (s *Store) KeyOwners(ctx context.Context, keys []string) (map[string]string, error) {
	b, ok := s.inner.(interface {
		KeyOwners(context.Context, []string) (map[string]string, error)
	})
	if !ok {
		return nil, errNotSupported
	}
	hashed := make([]string, len(keys))
	plain := make(map[string]string, len(keys))
	for i, k := range keys {
		hashed[i] = s.HashKey(k)
		plain[hashed[i]] = k
	}
	got, err := b.KeyOwners(ctx, hashed)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(got))
	for h, owner := range got {
		out[plain[h]] = owner
	}
	return out, nil
}

// seal returns a with the personal data of a user stream's events sealed with the user's data
// key and its unique keys as their hashes, and the plain key of each hash. A user without a key
// gets a new one: the append carries it (a.DataKey) when the wrapped store writes it in the
// append's transaction, and it is added to fresh (made if nil, returned) to be cached once the
// append commits; other stores get it stored first. first is false when sealing again after
// eventstore.ErrDataKeyExists: stored keys are then read even for a new stream. A fresh key of
// an earlier append of the same batch is reused, not carried again. Appending to an erased
// user's stream fails with ErrErased.
func (s *Store) seal(ctx context.Context, a eventstore.Append, first bool, fresh map[string]*auth.Sealer) (eventstore.Append, map[string]string, map[string]*auth.Sealer, error) {
	if uid, ok := userOf(a.Stream); ok {
		var sealer *auth.Sealer
		var err error
		if k, keeps := s.inner.(eventstore.DataKeyKeeper); !keeps || !k.KeepsDataKeys() {
			sealer, err = s.keys.forKey(ctx, uid, true)
		} else if sealer = fresh[uid]; sealer == nil {
			var newKey *eventstore.DataKey
			sealer, newKey, err = s.keys.forAppend(ctx, uid, first && a.Expected == eventstore.NoStream)
			if err == nil && newKey != nil {
				a.DataKey = newKey
				if fresh == nil {
					fresh = make(map[string]*auth.Sealer, 1)
				}
				fresh[uid] = sealer
			}
		}
		if err != nil {
			return a, nil, fresh, err
		}
		events := make([]eventstore.NewEvent, len(a.Events))
		for i, e := range a.Events {
			if events[i], err = s.codec.sealEvent(sealer, uid, e); err != nil {
				return a, nil, fresh, err
			}
		}
		a.Events = events
	}
	plain := make(map[string]string, len(a.Claim))
	claims := make([]string, len(a.Claim))
	for i, k := range a.Claim {
		claims[i] = s.HashKey(k)
		plain[claims[i]] = k
	}
	releases := make([]string, len(a.Release))
	for i, k := range a.Release {
		releases[i] = s.HashKey(k)
	}
	a.Claim, a.Release = claims, releases
	return a, plain, fresh, nil
}

// plainKeyTaken returns err with a taken key named by its plain kind and value, as callers know
// it.
func plainKeyTaken(err error, plain map[string]string) error {
	var taken *eventstore.KeyTakenError
	if errors.As(err, &taken) {
		if k, ok := plain[taken.Key]; ok {
			return &eventstore.KeyTakenError{Key: k}
		}
	}
	return err
}

// open opens one event read from the wrapped store.
func (s *Store) open(ctx context.Context, e eventstore.Event) (eventstore.Event, error) {
	uid, ok := userOf(e.StreamID)
	if !ok || !s.codec.hasPersonal(e) {
		return e, nil
	}
	sealer, err := s.keys.forKey(ctx, uid, false)
	switch {
	case errors.Is(err, ErrErased):
		return s.codec.openEvent(nil, uid, e)
	case err != nil:
		return e, err
	case sealer == nil && s.codec.hasSealed(e):
		// This process remembered the user as keyless (events from before sealing only), and
		// another one has since given them a key: look again.
		s.keys.forget(uid)
		if sealer, err = s.keys.forKey(ctx, uid, false); errors.Is(err, ErrErased) {
			return s.codec.openEvent(nil, uid, e)
		} else if err != nil {
			return e, err
		} else if sealer == nil {
			return e, nil // still none: plain data that merely looks sealed
		}
	case sealer == nil:
		return e, nil // no key: only events from before sealing existed, in plain
	}
	return s.codec.openEvent(sealer, uid, e)
}

func (s *Store) opened(ctx context.Context, events iter.Seq2[eventstore.Event, error]) iter.Seq2[eventstore.Event, error] {
	return func(yield func(eventstore.Event, error) bool) {
		for e, err := range events {
			if err == nil {
				e, err = s.open(ctx, e)
			}
			if !yield(e, err) || err != nil {
				return
			}
		}
	}
}

// ReadStream implements eventstore.Store, personal data opened.
func (s *Store) ReadStream(ctx context.Context, stream string, afterVersion uint64) iter.Seq2[eventstore.Event, error] {
	return s.opened(ctx, s.inner.ReadStream(ctx, stream, afterVersion))
}

// ReadAll implements eventstore.Store, personal data opened.
func (s *Store) ReadAll(ctx context.Context, after uint64, f eventstore.Filter) iter.Seq2[eventstore.Event, error] {
	return s.opened(ctx, s.inner.ReadAll(ctx, after, f))
}

// Subscribe implements eventstore.Store, personal data opened. It reads through the shared tail
// of the store underneath (follower.Subscribe), which the followers of that store (the relay, the
// audit sealer) read too: the followers of both cost one read of the log, not two.
func (s *Store) Subscribe(ctx context.Context, after uint64, f eventstore.Filter) iter.Seq2[eventstore.Event, error] {
	return s.opened(ctx, follower.Subscribe(ctx, s.inner, after, f))
}

// ScanAll implements eventstore.Scanner when the wrapped store does (else it reads ReadAll).
func (s *Store) ScanAll(ctx context.Context, after uint64) iter.Seq2[eventstore.Event, error] {
	if sc, ok := s.inner.(eventstore.Scanner); ok {
		return s.opened(ctx, sc.ScanAll(ctx, after))
	}
	return s.ReadAll(ctx, after, eventstore.Filter{})
}

// Close closes the wrapped store.
func (s *Store) Close() error { return s.inner.Close() }

// TransactionEnded implements eventstore.HorizonWaker when the wrapped store does.
func (s *Store) TransactionEnded() {
	if w, ok := s.inner.(eventstore.HorizonWaker); ok {
		w.TransactionEnded()
	}
}

// errNotSupported: the wrapped store lacks the capability.
var errNotSupported = errors.New("personaldata: the wrapped event store does not support this")

// Checkpoint implements eventstore.Checkpoints.
func (s *Store) Checkpoint(ctx context.Context, name string) (uint64, error) {
	cp, ok := s.inner.(eventstore.Checkpoints)
	if !ok {
		return 0, errNotSupported
	}
	return cp.Checkpoint(ctx, name)
}

// SetCheckpoint implements eventstore.Checkpoints.
func (s *Store) SetCheckpoint(ctx context.Context, name string, pos uint64) error {
	cp, ok := s.inner.(eventstore.Checkpoints)
	if !ok {
		return errNotSupported
	}
	return cp.SetCheckpoint(ctx, name, pos)
}

// KeyOwner implements eventstore.KeyOwners: it looks the key up by its hash.
func (s *Store) KeyOwner(ctx context.Context, key string) (string, error) {
	ko, ok := s.inner.(eventstore.KeyOwners)
	if !ok {
		return "", errNotSupported
	}
	return ko.KeyOwner(ctx, s.HashKey(key))
}

// LoadSnapshot implements eventstore.Snapshots. A user's snapshot is sealed whole with their data
// key: an erased user's does not open, and they are rebuilt from their (erased) events.
func (s *Store) LoadSnapshot(ctx context.Context, stream string) (eventstore.Snapshot, bool, error) {
	sn, ok := s.inner.(eventstore.Snapshots)
	if !ok {
		return eventstore.Snapshot{}, false, nil
	}
	snap, found, err := sn.LoadSnapshot(ctx, stream)
	if err != nil || !found {
		return snap, found, err
	}
	uid, isUser := userOf(stream)
	if !isUser {
		return snap, true, nil
	}
	sealer, err := s.keys.forKey(ctx, uid, false)
	if err != nil || sealer == nil {
		return eventstore.Snapshot{}, false, nil
	}
	var buf aadBuf
	data, err := sealer.Open(snap.Data, aad(buf[:], uid, "snapshot", ""))
	if err != nil {
		return eventstore.Snapshot{}, false, nil // from before sealing, or of another key: rebuild
	}
	snap.Data = data
	return snap, true, nil
}

// SaveSnapshot implements eventstore.Snapshots, sealing a user's snapshot with their data key. An
// erased user's snapshot is not saved.
func (s *Store) SaveSnapshot(ctx context.Context, stream string, snap eventstore.Snapshot) error {
	sn, ok := s.inner.(eventstore.Snapshots)
	if !ok {
		return nil
	}
	if uid, isUser := userOf(stream); isUser {
		sealer, err := s.keys.forKey(ctx, uid, false)
		if errors.Is(err, ErrErased) || sealer == nil {
			return nil
		}
		if err != nil {
			return err
		}
		var buf aadBuf
		snap.Data = sealer.Seal(snap.Data, aad(buf[:], uid, "snapshot", ""))
	}
	return sn.SaveSnapshot(ctx, stream, snap)
}

// Erase destroys the user's data key and overwrites their stored snapshot, the only copy of
// their state outside the log.
func (s *Store) Erase(ctx context.Context, uid domain.UserID) error {
	if err := s.keys.Erase(ctx, string(uid)); err != nil {
		return err
	}
	if sn, ok := s.inner.(eventstore.Snapshots); ok {
		if err := sn.SaveSnapshot(ctx, uid.Stream(), eventstore.Snapshot{Version: 1, Data: []byte{}}); err != nil {
			return fmt.Errorf("personaldata: overwrite the snapshot of %s: %w", uid, err)
		}
	}
	return nil
}

var (
	_ eventstore.Store       = (*Store)(nil)
	_ eventstore.Checkpoints = (*Store)(nil)
	_ eventstore.KeyOwners   = (*Store)(nil)
	_ eventstore.Snapshots   = (*Store)(nil)
	_ eventstore.Scanner     = (*Store)(nil)
)

// HashStoredKeys brings the unique keys db holds to the form HashKey makes, in one transaction
// and one scan of the table: plain keys (an older store's, from before sealing: they contain ':')
// become their keyed hashes, and hashes in the earlier form (kind, '#', the whole digest in hex)
// keep their first 128 bits in base64url, which needs no secret. Keys already in the form are
// left. db is the store's database, writable. It is safe to run at every start.
func (s *Store) HashStoredKeys(ctx context.Context, db *sqlx.DB) error {
	tx, err := db.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("personaldata: hash stored unique keys: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it does nothing
	var older []string
	if err := tx.SelectContext(ctx, &older, `SELECT key FROM unique_keys
		WHERE key LIKE '%:%' OR (length(key) > 65 AND substr(key, length(key) - 64, 1) = '#')`); err != nil {
		return fmt.Errorf("personaldata: hash stored unique keys: %w", err)
	}
	if len(older) == 0 {
		return nil
	}
	update, err := tx.PreparexContext(ctx, tx.Rebind(`UPDATE unique_keys SET key = ? WHERE key = ?`))
	if err != nil {
		return fmt.Errorf("personaldata: hash stored unique keys: %w", err)
	}
	defer update.Close()
	for _, k := range older {
		if now := s.storedForm(k); now != k {
			if _, err := update.ExecContext(ctx, now, k); err != nil {
				return fmt.Errorf("personaldata: hash stored unique keys: %w", err)
			}
		}
	}
	return tx.Commit()
}

// storedForm is HashKey's form of a stored key: a plain key's hash, the short form of a hash in
// the earlier one, and any other key as it is (a hash of ours already, or none: upper case, not
// hex).
func (s *Store) storedForm(k string) string {
	if strings.Contains(k, ":") {
		return s.HashKey(k)
	}
	kind, digest := k[:len(k)-65], k[len(k)-64:]
	if sum, err := hex.DecodeString(digest); err == nil && hex.EncodeToString(sum) == digest {
		return shortHashedKey(kind, sum[:hashedKeyBytes])
	}
	return k
}

// KeepsOutbox implements eventstore.OutboxKeeper as the wrapped store does: Append passes the
// outbox messages on untouched (they are sealed with the server's key already).
func (s *Store) KeepsOutbox() bool {
	k, ok := s.inner.(eventstore.OutboxKeeper)
	return ok && k.KeepsOutbox()
}

// NewUserID returns the id of a new user, its data key stored already on PostgreSQL
// (Keys.NewUserID): commands draw new users' ids from the store when it can.
func (s *Store) NewUserID(ctx context.Context) domain.UserID { return s.keys.NewUserID(ctx) }

// UnusedUserID gives back an id NewUserID returned whose registration stored nothing.
func (s *Store) UnusedUserID(uid domain.UserID) { s.keys.UnusedUserID(uid) }
