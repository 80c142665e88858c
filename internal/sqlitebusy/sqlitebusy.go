// Package sqlitebusy waits for the write lock of a SQLite file without SQLite's busy handler.
//
// While another connection holds the lock, the busy handler sleeps 1, 2, 5, 10, 15, 20 ms and
// more before each new try. In idlog that other connection is nearly always one of the
// process's own (the event store's writer, a projector's commit, the attempt limiter), and each
// holds the lock for well under a millisecond: a request that lost the lock to one of them slept
// a millisecond or more for it. At 4 clients, a quarter of a SQLite sign-in's time was the
// limiter's two statements asleep there. Here a connection whose busy handler is off tries again
// after 100 µs, doubling up to 2 ms, for as long as the caller's timeout allows.
package sqlitebusy

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/jmoiron/sqlx"
	"modernc.org/sqlite"
)

// busy is SQLITE_BUSY, the primary result code of a lock held by another connection (its
// extended codes, such as SQLITE_BUSY_SNAPSHOT, share it).
const busy = 5

// Is reports whether err is SQLite's refusal of a lock another connection holds.
func Is(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == busy
}

// Timeout is how long a write of the read models' pool (projections.OpenSQLite) waits for the
// lock before it fails, as its busy timeout would have.
const Timeout = 30 * time.Second

// The pauses between tries: short at first, since the lock is usually released within a
// fraction of a millisecond, and never long, since a long pause outlasts the lock it waits for.
const (
	firstPause = 100 * time.Microsecond
	maxPause   = 2 * time.Millisecond
)

// Retry runs f until it returns anything other than SQLITE_BUSY, pausing between tries, for at
// most timeout; it then returns f's last error. ctx ends the wait with its error.
func Retry(ctx context.Context, timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	pause := firstPause
	for {
		err := f()
		if !Is(err) || time.Now().After(deadline) {
			return err
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		pause = min(2*pause, maxPause)
	}
}

// Conn takes a connection of db and turns its busy handler off (busy_timeout 0), so that a
// statement that needs the lock fails at once with SQLITE_BUSY and Retry decides the wait.
// done gives the connection back to the pool with its busy timeout as it was; call it once the
// connection's work is over.
func Conn(ctx context.Context, db *sqlx.DB) (conn *sqlx.Conn, done func(), err error) {
	conn, err = db.Connx(ctx)
	if err != nil {
		return nil, nil, err
	}
	var ms int64
	if err := conn.QueryRowxContext(ctx, "PRAGMA busy_timeout").Scan(&ms); err != nil {
		_ = conn.Close()
		return nil, nil, err
	}
	if _, err := conn.ExecContext(ctx, "PRAGMA busy_timeout = 0"); err != nil {
		_ = conn.Close()
		return nil, nil, err
	}
	return conn, func() {
		// On failure the connection goes back without a busy timeout: it then fails at once
		// where it would have waited, which is an error a caller sees, never a wrong result.
		_, _ = conn.ExecContext(context.WithoutCancel(ctx), "PRAGMA busy_timeout = "+strconv.FormatInt(ms, 10))
		_ = conn.Close()
	}, nil
}

// InTx runs f in a write transaction on a connection of db of its own. While another connection
// holds the file's lock, the transaction is rolled back and run again from the start (at BEGIN
// IMMEDIATE, or at f's first write in a deferred transaction), for at most timeout: f must do
// nothing outside tx that it cannot do twice.
func InTx(ctx context.Context, db *sqlx.DB, timeout time.Duration, f func(tx *sqlx.Tx) error) error {
	conn, done, err := Conn(ctx, db)
	if err != nil {
		return err
	}
	defer done()
	return Retry(ctx, timeout, func() error {
		tx, err := conn.BeginTxx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback() //nolint:errcheck // after Commit it does nothing
		if err := f(tx); err != nil {
			return err
		}
		return tx.Commit()
	})
}
