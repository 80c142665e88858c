package personaldata

import (
	"context"
	"crypto/rand"
	"fmt"
	"time"

	"github.com/lib/pq"

	"github.com/idlog/idlog/auth"
	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/migrations"
)

// New users' ids on PostgreSQL come with their data keys stored ahead, in batches, so that a
// registration's append writes no key row: a row of personal_data_keys in the append's
// transaction cost a registration about 8% of its throughput (a heap and an index insertion, and
// a second function around idlog_append). A batch commits without waiting for the disk (as
// Keys.insert does), for the same reason: the registration that uses a key commits after it, and
// its own flush of PostgreSQL's sequential log makes the key durable too. An id whose stream
// exists (someone's: 40-bit ids can collide) or that has a key row already (an erasure, a key of
// another process's batch) is not inserted, and not drawn.
//
// SQLite stores no keys ahead: its registration keeps the key in the stream's row, which it
// writes anyway (migration 00280), and a batch of its own, on SQLite's single writer, made
// sealed registrations slower (80-82% of plain ones with 8 writers, against 88% without).
//
// An id drawn and not used (a registration refused after the draw, a process that stops) leaves
// a key row that seals nothing and belongs to no user; an id that a refused registration gives
// back (UnusedUserID) is drawn again. Batches start at one id and double up to aheadBatch, so a
// process that registers one user (idlog users create) leaves at most two such rows.
const (
	aheadBatch = 64 // the most ids stored in one statement
	aheadLow   = 16 // a batch is stored in the background when no more are left
)

// ahead is a process's ids of users to come, whose keys are stored already.
type ahead struct {
	ready   []aheadID
	next    int  // the size of the next batch (0: 1)
	filling bool // a background batch is being stored
}

type aheadID struct {
	uid    domain.UserID
	sealer *auth.Sealer
}

// NewUserID returns the id of a new user, drawn from crypto/rand. On PostgreSQL its data key is
// stored already and cached, so the registration's append carries none (see above). If a batch
// cannot be stored (the database is down), the id comes without a key and the registration
// stores one in its own transaction, as it does for ids drawn elsewhere.
func (k *Keys) NewUserID(ctx context.Context) domain.UserID {
	if k.dialect != migrations.Postgres {
		return randomUserID()
	}
	for range 2 {
		k.mu.Lock()
		if n := len(k.ahead.ready); n > 0 {
			id := k.ahead.ready[n-1]
			k.ahead.ready = k.ahead.ready[:n-1]
			k.startBatch()
			k.rememberLocked(string(id.uid), cachedKey{sealer: id.sealer, known: true})
			k.mu.Unlock()
			return id.uid
		}
		k.mu.Unlock()
		// None left: store a batch now, for this draw and those to come.
		if err := k.storeAhead(ctx); err != nil {
			break
		}
	}
	return randomUserID()
}

// UnusedUserID gives back an id NewUserID returned whose registration was refused with nothing
// stored (its unique keys were taken, say), so that its stored key is used by the next one.
func (k *Keys) UnusedUserID(uid domain.UserID) {
	if k.dialect != migrations.Postgres {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	c, ok := k.cache[string(uid)]
	if !ok || c.sealer == nil || len(k.ahead.ready) >= 2*aheadBatch {
		return
	}
	k.ahead.ready = append(k.ahead.ready, aheadID{uid: uid, sealer: c.sealer})
}

// startBatch stores a batch in the background when the ids left run low. k.mu is held.
func (k *Keys) startBatch() {
	if len(k.ahead.ready) > aheadLow || k.ahead.filling {
		return
	}
	k.ahead.filling = true
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = k.storeAhead(ctx) // a failure leaves the next draw to try, in its request
		k.mu.Lock()
		k.ahead.filling = false
		k.mu.Unlock()
	}()
}

// storeAhead stores a batch of new ids' keys and adds the ids stored to the ready ones.
func (k *Keys) storeAhead(ctx context.Context) error {
	k.mu.Lock()
	n := max(k.ahead.next, 1)
	k.ahead.next = min(2*n, aheadBatch)
	k.mu.Unlock()
	uids := make([]string, n)
	wrapped := make([][]byte, n)
	sealers := make(map[string]*auth.Sealer, n)
	for i := range uids {
		uid := string(randomUserID())
		s, stored, err := k.newKey(uid)
		if err != nil {
			return err
		}
		uids[i], wrapped[i], sealers[uid] = uid, stored, s
	}
	inserted, err := k.insertAhead(ctx, uids, wrapped)
	if err != nil {
		return err
	}
	stored := make([]aheadID, len(inserted))
	for i, uid := range inserted {
		stored[i] = aheadID{uid: domain.UserID(uid), sealer: sealers[uid]}
	}
	k.mu.Lock()
	k.ahead.ready = append(k.ahead.ready, stored...)
	k.mu.Unlock()
	return nil
}

// insertAhead inserts the keys of new ids (PostgreSQL), but where an id has a key row or a stream
// already, and returns the ids inserted.
func (k *Keys) insertAhead(ctx context.Context, uids []string, wrapped [][]byte) ([]string, error) {
	var inserted []string
	// set_config(..., true) lasts until the end of this statement's own transaction, its commit
	// included.
	err := k.db.SelectContext(ctx, &inserted, `WITH async AS (SELECT set_config('synchronous_commit', 'off', true))
		INSERT INTO personal_data_keys (uid, wrapped) SELECT t.uid, t.wrapped FROM async, unnest($1::text[], $2::bytea[]) AS t(uid, wrapped)
		WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.stream_id = $3 || t.uid)
		ON CONFLICT (uid) DO NOTHING RETURNING uid`, pq.Array(uids), pq.Array(wrapped), domain.UserStreamPrefix)
	if err != nil {
		return nil, fmt.Errorf("personaldata: store new users' data keys: %w", err)
	}
	return inserted, nil
}

// randomUserID draws a user id from crypto/rand.
func randomUserID() domain.UserID {
	var random [5]byte
	rand.Read(random[:]) // never fails (crypto/rand, Go 1.24+)
	return domain.NewUserID(random)
}
