package lease

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"hash/fnv"
	"time"
)

// UserLocks serialise work on one key (a user's commands) across the replicas of one PostgreSQL
// database, by a session advisory lock held on a connection of its own for the turn. It
// implements commands.UserLocks.
type UserLocks struct {
	db *sql.DB
	// held bounds the locks this process holds at once: each holds a connection of db for its
	// turn, and the work done in the turn needs connections of db too. Without a bound, as many
	// turns as db has connections would hold them all and wait for one forever.
	held chan struct{}
}

// NewUserLocks returns locks on db, at most maxHeld held at once (at most half of db's
// connections, say). A nil db is a wiring mistake and panics.
func NewUserLocks(db *sql.DB, maxHeld int) *UserLocks {
	if db == nil {
		panic("lease: NewUserLocks needs a database")
	}
	return &UserLocks{db: db, held: make(chan struct{}, max(1, maxHeld))}
}

func lockID(key string) int64 {
	h := fnv.New64a()
	h.Write([]byte("idlog lock " + key))
	return int64(h.Sum64())
}

// Lock waits until this process holds key's lock, or ctx ends (the wait is cancelled in the
// database too). The returned unlock releases it and hands the connection back.
func (l *UserLocks) Lock(ctx context.Context, key string) (func(), error) {
	select {
	case l.held <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	conn, err := l.lock(ctx, key)
	if err != nil {
		<-l.held
		return nil, err
	}
	return func() {
		l.unlock(conn, key)
		<-l.held
	}, nil
}

func (l *UserLocks) lock(ctx context.Context, key string) (*sql.Conn, error) {
	conn, err := l.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("lease: lock %q: %w", key, err)
	}
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, lockID(key)); err != nil {
		discard(conn)
		return nil, fmt.Errorf("lease: lock %q: %w", key, err)
	}
	return conn, nil
}

func (l *UserLocks) unlock(conn *sql.Conn, key string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_unlock($1)`, lockID(key)); err != nil {
		discard(conn) // the session may still hold the lock: it must not go back to the pool
		return
	}
	_ = conn.Close()
}

// discard closes the connection itself rather than returning it to the pool, which ends its
// session and every lock it holds.
func discard(conn *sql.Conn) {
	_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	_ = conn.Close()
}
