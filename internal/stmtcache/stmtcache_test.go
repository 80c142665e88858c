package stmtcache_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/idlog/idlog/internal/roundtrips"
	"github.com/idlog/idlog/internal/stmtcache"
)

// The cache prepares a statement once and reuses it in and out of transactions, stops preparing
// past its bound (the statements still run), and runs a statement it cannot prepare unprepared,
// so the statement's own error reaches the caller. A nil cache runs statements in the
// transaction given.
func TestCache(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, err := sqlx.Open("sqlite", filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)`); err != nil {
		t.Fatal(err)
	}
	c := stmtcache.New(db)
	defer c.Close()
	tx, err := db.Beginx()
	if err != nil {
		t.Fatal(err)
	}
	for k := range 2 {
		if _, err := c.ExecContext(ctx, tx, `INSERT INTO t (k, v) VALUES (?, ?)`, k, "a"); err != nil {
			t.Fatal(err)
		}
	}
	if st := c.Stmt(ctx, `INSERT INTO t (k, v) VALUES (?, ?)`); st == nil || st != c.Stmt(ctx, `INSERT INTO t (k, v) VALUES (?, ?)`) {
		t.Fatal("a query run twice is not one cached statement")
	}
	for k := 2; k < stmtcache.MaxStmts+10; k++ {
		q := fmt.Sprintf(`INSERT INTO t (k, v) VALUES (?, ?) -- %d`, k)
		if _, err := c.ExecContext(ctx, tx, q, k, "b"); err != nil {
			t.Fatalf("statement %d past the bound: %v", k, err)
		}
	}
	// The statements first run in a transaction are prepared in the background.
	for deadline := time.Now().Add(10 * time.Second); c.Len() < stmtcache.MaxStmts && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if n := c.Len(); n != stmtcache.MaxStmts {
		t.Fatalf("%d statements cached, want the bound %d", n, stmtcache.MaxStmts)
	}
	if st := c.Stmt(ctx, `SELECT 1 -- past the bound`); st != nil {
		t.Error("a statement past the bound was prepared")
	}
	var n int
	if err := c.GetContext(ctx, tx, &n, `SELECT count(*) FROM t WHERE v <> ?`, "z"); err != nil || n != stmtcache.MaxStmts+10 {
		t.Errorf("rows written: %d (%v), want %d", n, err, stmtcache.MaxStmts+10)
	}
	_, err = c.ExecContext(ctx, tx, `INSERT INTO no_such_table (k) VALUES (?)`, 1)
	if err == nil || !strings.Contains(err.Error(), "no_such_table") {
		t.Errorf("a statement that cannot be prepared: %v, want its own error", err)
	}
	var none *stmtcache.Cache
	if _, err := none.ExecContext(ctx, tx, `INSERT INTO t (k, v) VALUES (?, ?)`, -1, "c"); err != nil {
		t.Errorf("without a cache: %v", err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	// Out of a transaction, on the handle, with the statements prepared in it.
	var vs []string
	if err := c.SelectContext(ctx, nil, &vs, `SELECT v FROM t WHERE k < ? ORDER BY k`, 2); err != nil || len(vs) != 3 || vs[0] != "c" {
		t.Errorf("select on the handle: %v, %v", vs, err)
	}
	var v string
	if err := c.QueryRowxContext(ctx, nil, `SELECT v FROM t WHERE k = ?`, 1).Scan(&v); err != nil || v != "a" {
		t.Errorf("query row on the handle: %q, %v", v, err)
	}
	if err := c.GetContext(ctx, nil, &v, `SELECT v FROM t WHERE k = ?`, 1000); !errors.Is(err, sql.ErrNoRows) {
		t.Errorf("get without a row: %v, want sql.ErrNoRows", err)
	}
}

// A transaction that holds the pool's only connection runs a statement the cache does not hold
// yet unprepared: preparing it on the handle would wait for a second connection while the
// transaction holds its locks (with every connection in a transaction waiting for them, SQLite's
// writer or PostgreSQL's rows, neither would move). The statement is prepared once the
// connection is free, and later transactions use it on their own connection.
func TestNoSecondConnectionInATransaction(t *testing.T) {
	t.Parallel()
	db, err := sqlx.Open("sqlite", filepath.Join(t.TempDir(), "one.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(`CREATE TABLE t (k INTEGER PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	c := stmtcache.New(db)
	defer c.Close()
	const q = `INSERT INTO t (k) VALUES (?)`
	for k := range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		tx, err := db.BeginTxx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.ExecContext(ctx, tx, q, k); err != nil {
			t.Fatalf("transaction %d on the only connection: %v", k, err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		cancel()
		for deadline := time.Now().Add(5 * time.Second); c.Len() == 0 && time.Now().Before(deadline); {
			time.Sleep(5 * time.Millisecond)
		}
	}
	if c.Len() != 1 {
		t.Errorf("%d statements cached after the transactions, want 1", c.Len())
	}
}

// On PostgreSQL a cached statement is prepared on the server once per connection, and then costs
// one round trip where lib/pq spends two on a statement with arguments: in a transaction and out,
// through the cache's methods and through Queries.
func TestCachedStatementsSaveARoundTrip(t *testing.T) {
	dsn := os.Getenv("IDLOG_TEST_DATABASE_URL")
	if dsn == "" {
		t.Skip("PostgreSQL test SKIPPED: set IDLOG_TEST_DATABASE_URL")
	}
	t.Parallel()
	conn, err := roundtrips.Connector(dsn)
	if err != nil {
		t.Fatal(err)
	}
	db := sqlx.NewDb(sql.OpenDB(conn), "postgres")
	defer db.Close()
	db.SetMaxOpenConns(1) // one connection: what it prepared shows in pg_prepared_statements
	c := stmtcache.New(db)
	defer c.Close()
	const q = `SELECT $1::int + 1`
	trips := func(run func(ctx context.Context) error) int64 {
		t.Helper()
		ctx, n := roundtrips.Track(context.Background())
		if err := run(ctx); err != nil {
			t.Fatal(err)
		}
		return n.N()
	}
	var got int
	plain := trips(func(ctx context.Context) error { return db.GetContext(ctx, &got, q, 1) })
	c.Stmt(context.Background(), q) // prepared on the connection, as on a warm process
	cached := trips(func(ctx context.Context) error { return c.GetContext(ctx, nil, &got, q, 1) })
	if plain != 2 || cached != 1 || got != 2 {
		t.Errorf("round trips: %d unprepared, %d cached (got %d); want 2 and 1", plain, cached, got)
	}
	inTx := trips(func(ctx context.Context) error {
		tx, err := db.BeginTxx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback() //nolint:errcheck // after Commit it does nothing
		if err := c.GetContext(ctx, tx, &got, q, 2); err != nil {
			return err
		}
		// The same through Queries, as lease.Check runs it.
		if err := c.In(tx).QueryRowContext(ctx, q, 3).Scan(&got); err != nil || got != 4 {
			return fmt.Errorf("QueryRowContext: %d, %v", got, err)
		}
		rows, err := c.In(tx).QueryContext(ctx, q, 4)
		if err != nil {
			return err
		}
		defer rows.Close()
		if !rows.Next() || rows.Scan(&got) != nil || got != 5 || rows.Next() {
			return fmt.Errorf("QueryContext: %d, %v", got, rows.Err())
		}
		return tx.Commit()
	})
	if inTx != 5 { // BEGIN, three executions, COMMIT
		t.Errorf("a transaction running the cached statement 3 times: %d round trips, want 5", inTx)
	}
	var prepared int
	if err := db.Get(&prepared, `SELECT count(*) FROM pg_prepared_statements WHERE statement = $1`, q); err != nil || prepared != 1 {
		t.Errorf("the connection holds %d prepared copies of the statement (%v), want 1", prepared, err)
	}
}
