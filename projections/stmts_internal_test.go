package projections

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// The live batches' statement cache prepares a statement once and reuses it, stops preparing
// past its bound (the statements still run), and runs a statement it cannot prepare unprepared,
// so the statement's own error reaches the projector.
func TestStmtCache(t *testing.T) {
	ctx := context.Background()
	db, err := OpenSQLite(ctx, filepath.Join(t.TempDir(), "read.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)`); err != nil {
		t.Fatal(err)
	}
	c := newStmtCache(db.DB)
	defer c.close()
	tx, err := db.Beginx()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback() //nolint:errcheck // the test reads its writes in the transaction
	for k := range 2 {
		if _, err := c.exec(ctx, tx, `INSERT INTO t (k, v) VALUES (?, ?)`, k, "a"); err != nil {
			t.Fatal(err)
		}
	}
	if len(c.stmts) != 1 {
		t.Fatalf("%d statements cached for one query run twice, want 1", len(c.stmts))
	}
	for k := 2; k < maxCachedStmts+10; k++ {
		q := fmt.Sprintf(`INSERT INTO t (k, v) VALUES (?, ?) -- %d`, k)
		if _, err := c.exec(ctx, tx, q, k, "b"); err != nil {
			t.Fatalf("statement %d past the bound: %v", k, err)
		}
	}
	if len(c.stmts) != maxCachedStmts {
		t.Errorf("%d statements cached, want the bound %d", len(c.stmts), maxCachedStmts)
	}
	var n int
	if err := tx.Get(&n, `SELECT count(*) FROM t`); err != nil || n != maxCachedStmts+10 {
		t.Errorf("rows written: %d (%v), want %d", n, err, maxCachedStmts+10)
	}
	_, err = c.exec(ctx, tx, `INSERT INTO no_such_table (k) VALUES (?)`, 1)
	if err == nil || !strings.Contains(err.Error(), "no_such_table") {
		t.Errorf("a statement that cannot be prepared: %v, want its own error", err)
	}
	var none *stmtCache
	if _, err := none.exec(ctx, tx, `INSERT INTO t (k, v) VALUES (?, ?)`, -1, "c"); err != nil {
		t.Errorf("without a cache: %v", err)
	}
}
