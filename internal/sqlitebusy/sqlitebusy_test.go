package sqlitebusy_test

import (
	"context"
	"errors"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	_ "modernc.org/sqlite"

	"github.com/idlog/idlog/internal/sqlitebusy"
)

// open returns a pool of one connection on path, in WAL mode, with SQLite's busy handler waiting
// up to busyMS.
func open(t *testing.T, path string, busyMS int) *sqlx.DB {
	t.Helper()
	db, err := sqlx.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout("+strconv.Itoa(busyMS)+")&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

// holdLock takes the file's write lock on its own connection and returns the function that
// commits (and so releases it).
func holdLock(t *testing.T, path string) (release func()) {
	t.Helper()
	db := open(t, path, 0)
	tx, err := db.Beginx()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(`INSERT INTO rows (v) VALUES ('held')`); err != nil {
		t.Fatal(err)
	}
	return func() {
		if err := tx.Commit(); err != nil {
			t.Error(err)
		}
	}
}

// lockedFile returns a pool on a new file whose write lock another connection holds until the
// test ends.
func lockedFile(t *testing.T, busyMS int) *sqlx.DB {
	t.Helper()
	path := newFile(t)
	db := open(t, path, busyMS)
	t.Cleanup(holdLock(t, path))
	return db
}

func insertMine(tx *sqlx.Tx) error {
	_, err := tx.Exec(`INSERT INTO rows (v) VALUES ('mine')`)
	return err
}

func queryInt(t *testing.T, db *sqlx.DB, q string) int {
	t.Helper()
	var n int
	if err := db.Get(&n, q); err != nil {
		t.Fatal(err)
	}
	return n
}

func newFile(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "busy.db")
	if _, err := open(t, path, 0).Exec(`CREATE TABLE rows (v TEXT)`); err != nil {
		t.Fatal(err)
	}
	return path
}

// A transaction that finds the lock taken waits for it and then runs f to the end, once its
// changes count: the tries that found the lock taken left nothing behind.
func TestInTxWaitsForTheLockAndRunsAgain(t *testing.T) {
	path := newFile(t)
	db := open(t, path, 0) // no busy handler at all: only InTx waits
	release := holdLock(t, path)
	var runs atomic.Int32
	done := make(chan error, 1)
	go func() {
		done <- sqlitebusy.InTx(t.Context(), db, 10*time.Second, func(tx *sqlx.Tx) error {
			runs.Add(1)
			return insertMine(tx)
		})
	}()
	time.Sleep(20 * time.Millisecond) // let it find the lock taken
	select {
	case err := <-done:
		t.Fatalf("InTx ended while the lock was held: %v", err)
	default:
	}
	release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if mine := queryInt(t, db, `SELECT count(*) FROM rows WHERE v = 'mine'`); mine != 1 {
		t.Errorf("%d rows written, want 1", mine)
	}
	// txlock immediate: each try that found the lock taken failed at BEGIN, before f.
	if n := runs.Load(); n != 1 {
		t.Errorf("f ran %d times, want 1", n)
	}
}

// A deferred transaction that loses the lock at its first write is rolled back and run again.
func TestInTxRunsADeferredTransactionAgain(t *testing.T) {
	path := newFile(t)
	db, err := sqlx.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)") // deferred BEGIN
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	release := holdLock(t, path)
	var runs atomic.Int32
	done := make(chan error, 1)
	go func() {
		done <- sqlitebusy.InTx(t.Context(), db, 10*time.Second, func(tx *sqlx.Tx) error {
			if runs.Add(1) == 2 {
				time.AfterFunc(0, release) // the lock comes free while it waits
			}
			return insertMine(tx)
		})
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := runs.Load(); n < 2 {
		t.Errorf("f ran %d times, want it run again after losing the lock", n)
	}
	if mine := queryInt(t, db, `SELECT count(*) FROM rows WHERE v = 'mine'`); mine != 1 {
		t.Errorf("%d rows written, want 1", mine)
	}
}

// A lock held past the timeout fails the transaction with SQLite's busy error; the connection goes
// back to the pool with the busy timeout it had.
func TestInTxGivesUpAfterTheTimeout(t *testing.T) {
	db := lockedFile(t, 4321)
	if err := sqlitebusy.InTx(t.Context(), db, 30*time.Millisecond, insertMine); !sqlitebusy.Is(err) {
		t.Fatalf("InTx with the lock held = %v, want SQLITE_BUSY", err)
	}
	if ms := queryInt(t, db, `PRAGMA busy_timeout`); ms != 4321 {
		t.Errorf("busy_timeout after InTx = %d, want 4321", ms)
	}
}

// The caller's context ends the wait.
func TestRetryEndsWithTheContext(t *testing.T) {
	db := lockedFile(t, 0)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Millisecond)
	defer cancel()
	err := sqlitebusy.InTx(ctx, db, time.Minute, func(tx *sqlx.Tx) error { return nil })
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("InTx after its context ended = %v, want %v", err, context.DeadlineExceeded)
	}
}
