package idempotency

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
)

// Record is a claim another request holds: its fingerprint and, once that request answered, the
// answer (nil while it runs).
type Record struct {
	Fingerprint []byte
	Answer      []byte
}

// Store keeps claims and answers. Implementations are safe for concurrent use, and atomic per
// claim: of two Claims of one free id, exactly one takes it.
type Store interface {
	// Claim takes id for owner until `until`, if nobody holds it or its holder's time is over
	// (before now): a lease ended without an answer, or an answer's retention. Otherwise it
	// returns the record of the holder, and taken false.
	Claim(ctx context.Context, id string, fingerprint []byte, owner string, until, now time.Time) (taken bool, held Record, err error)
	// Complete keeps the answer of owner's claim until `until`. A claim owner no longer holds
	// (taken over after its lease) is left alone.
	Complete(ctx context.Context, id, owner string, answer []byte, until time.Time) error
	// Release frees owner's claim, which has no answer, so the next request runs.
	Release(ctx context.Context, id, owner string) error
	// Sweep forgets every claim whose time was over before now, and says how many.
	Sweep(ctx context.Context, now time.Time) (int64, error)
}

// SQLStore keeps claims in the table idempotency_answers of a PostgreSQL or SQLite database
// (migrations 00004): the event store's own, so they live as long as the log they guard.
type SQLStore struct{ db *sqlx.DB }

var _ Store = (*SQLStore)(nil)

// NewSQLStore returns the store over db, a writable pool of a migrated database ("postgres" or
// "sqlite" driver). A nil db is a wiring mistake and panics.
func NewSQLStore(db *sqlx.DB) *SQLStore {
	if db == nil {
		panic("idempotency: NewSQLStore needs a database")
	}
	return &SQLStore{db: db}
}

func (s *SQLStore) q(query string) string { return s.db.Rebind(query) }

// Claim implements Store. One statement takes a free or expired claim: on both engines the
// upsert either writes this owner or, when a live holder is there, nothing.
func (s *SQLStore) Claim(ctx context.Context, id string, fp []byte, owner string, until, now time.Time) (bool, Record, error) {
	// Retries and waiters find a live claim with a read: no write lock (SQLite has one).
	var r Record
	var expires int64
	err := s.db.QueryRowxContext(ctx, s.q(`SELECT fingerprint, answer, expires_at FROM idempotency_answers WHERE claim = ?`), id).
		Scan(&r.Fingerprint, &r.Answer, &expires)
	switch {
	case err == nil && expires >= now.UnixMicro():
		return false, r, nil
	case err != nil && !errors.Is(err, sql.ErrNoRows):
		return false, Record{}, fmt.Errorf("idempotency: read claim: %w", err)
	}
	for {
		var got string
		err := s.db.QueryRowxContext(ctx, s.q(`INSERT INTO idempotency_answers (claim, fingerprint, owner, answer, expires_at)
			VALUES (?, ?, ?, NULL, ?)
			ON CONFLICT (claim) DO UPDATE SET fingerprint = excluded.fingerprint, owner = excluded.owner,
				answer = NULL, expires_at = excluded.expires_at
			WHERE idempotency_answers.expires_at < ?
			RETURNING owner`), id, fp, owner, until.UnixMicro(), now.UnixMicro()).Scan(&got)
		switch {
		case err == nil:
			return true, Record{}, nil
		case !errors.Is(err, sql.ErrNoRows):
			return false, Record{}, fmt.Errorf("idempotency: claim: %w", err)
		}
		err = s.db.QueryRowxContext(ctx, s.q(`SELECT fingerprint, answer FROM idempotency_answers WHERE claim = ?`), id).
			Scan(&r.Fingerprint, &r.Answer)
		if errors.Is(err, sql.ErrNoRows) {
			continue // released or swept in between: try again
		}
		if err != nil {
			return false, Record{}, fmt.Errorf("idempotency: read claim: %w", err)
		}
		return false, r, nil
	}
}

// Complete implements Store.
func (s *SQLStore) Complete(ctx context.Context, id, owner string, answer []byte, until time.Time) error {
	if answer == nil {
		answer = []byte{} // null means "running"
	}
	_, err := s.db.ExecContext(ctx, s.q(`UPDATE idempotency_answers SET answer = ?, expires_at = ? WHERE claim = ? AND owner = ?`),
		answer, until.UnixMicro(), id, owner)
	if err != nil {
		return fmt.Errorf("idempotency: keep answer: %w", err)
	}
	return nil
}

// Release implements Store.
func (s *SQLStore) Release(ctx context.Context, id, owner string) error {
	_, err := s.db.ExecContext(ctx, s.q(`DELETE FROM idempotency_answers WHERE claim = ? AND owner = ? AND answer IS NULL`), id, owner)
	if err != nil {
		return fmt.Errorf("idempotency: release claim: %w", err)
	}
	return nil
}

// Sweep implements Store.
func (s *SQLStore) Sweep(ctx context.Context, now time.Time) (int64, error) {
	res, err := s.db.ExecContext(ctx, s.q(`DELETE FROM idempotency_answers WHERE expires_at < ?`), now.UnixMicro())
	if err != nil {
		return 0, fmt.Errorf("idempotency: sweep: %w", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// MemoryStore keeps claims in this process: a restart or another replica forgets them. It is
// for tests and for a single process without a SQL database.
type MemoryStore struct {
	mu sync.Mutex
	m  map[string]*memoryClaim
}

type memoryClaim struct {
	fp, answer []byte
	owner      string
	until      time.Time
}

var _ Store = (*MemoryStore)(nil)

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore { return &MemoryStore{m: map[string]*memoryClaim{}} }

// Claim implements Store.
func (s *MemoryStore) Claim(_ context.Context, id string, fp []byte, owner string, until, now time.Time) (bool, Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.m[id]; ok && !c.until.Before(now) {
		return false, Record{Fingerprint: bytes.Clone(c.fp), Answer: bytes.Clone(c.answer)}, nil
	}
	s.m[id] = &memoryClaim{fp: bytes.Clone(fp), owner: owner, until: until}
	return true, Record{}, nil
}

// Complete implements Store.
func (s *MemoryStore) Complete(_ context.Context, id, owner string, answer []byte, until time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.m[id]; ok && c.owner == owner {
		c.answer, c.until = append([]byte{}, answer...), until
	}
	return nil
}

// Release implements Store.
func (s *MemoryStore) Release(_ context.Context, id, owner string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.m[id]; ok && c.owner == owner && c.answer == nil {
		delete(s.m, id)
	}
	return nil
}

// Sweep implements Store.
func (s *MemoryStore) Sweep(_ context.Context, now time.Time) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for id, c := range s.m {
		if c.until.Before(now) {
			delete(s.m, id)
			n++
		}
	}
	return n, nil
}
