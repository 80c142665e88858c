package lease_test

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idlog/idlog/eventstore/eventstoretest"
	"github.com/idlog/idlog/lease"
)

func openPool(t *testing.T, dsn string, conns int) *sql.DB {
	t.Helper()
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(conns)
	t.Cleanup(func() { db.Close() })
	return db
}

// TestUserLocksExcludeAcrossProcesses: turns on one key from two processes' pools never overlap.
func TestUserLocksExcludeAcrossProcesses(t *testing.T) {
	t.Parallel()
	dsn := eventstoretest.PostgresSchema(t)
	a := lease.NewUserLocks(openPool(t, dsn, 8), 4)
	b := lease.NewUserLocks(openPool(t, dsn, 8), 4)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var inside, overlaps atomic.Int32
	var wg sync.WaitGroup
	for i := range 20 {
		l := a
		if i%2 == 1 {
			l = b
		}
		wg.Go(func() {
			unlock, err := l.Lock(ctx, "user ID0000000001")
			if err != nil {
				t.Error(err)
				return
			}
			if inside.Add(1) > 1 {
				overlaps.Add(1)
			}
			time.Sleep(2 * time.Millisecond) // a turn's work
			inside.Add(-1)
			unlock()
		})
	}
	wg.Wait()
	if overlaps.Load() != 0 {
		t.Fatalf("%d turns overlapped another on the same key", overlaps.Load())
	}
}

// TestUserLocksLeaveConnectionsForTheTurns: many turns on distinct keys at once, each needing a
// connection of the same pool for its work, all end: the locks never hold every connection.
func TestUserLocksLeaveConnectionsForTheTurns(t *testing.T) {
	t.Parallel()
	db := openPool(t, eventstoretest.PostgresSchema(t), 4)
	l := lease.NewUserLocks(db, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			unlock, err := l.Lock(ctx, fmt.Sprintf("user %d", i))
			if err != nil {
				t.Error(err)
				return
			}
			defer unlock()
			var one int
			if err := db.QueryRowContext(ctx, `SELECT 1`).Scan(&one); err != nil {
				t.Errorf("the work of turn %d: %v", i, err)
			}
		})
	}
	wg.Wait()
}
