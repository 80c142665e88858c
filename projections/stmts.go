package projections

import (
	"context"
	"database/sql"
	"sync"

	"github.com/jmoiron/sqlx"
)

// maxCachedStmts bounds a stmtCache: statements built per batch (multi-row inserts of a batch's
// size) would otherwise fill it; past the bound, statements run unprepared.
const maxCachedStmts = 256

// stmtCache prepares the statements of live batches once on the database handle; database/sql
// then prepares each once per connection and reuses it in every transaction on that connection.
// A nil cache runs statements unprepared.
type stmtCache struct {
	db *sql.DB

	mu    sync.Mutex
	stmts map[string]*sql.Stmt
}

func newStmtCache(db *sql.DB) *stmtCache {
	return &stmtCache{db: db, stmts: map[string]*sql.Stmt{}}
}

// exec runs query in tx, prepared when the cache holds it or has room for it.
func (c *stmtCache) exec(ctx context.Context, tx *sqlx.Tx, query string, args ...any) (sql.Result, error) {
	if c == nil {
		return tx.Tx.ExecContext(ctx, query, args...)
	}
	st := c.get(ctx, query)
	if st == nil {
		return tx.Tx.ExecContext(ctx, query, args...)
	}
	return tx.Tx.StmtContext(ctx, st).ExecContext(ctx, args...)
}

// get returns query's prepared statement, preparing it if there is room; nil if there is none or
// the preparation failed (the statement then runs unprepared, and fails there if it must).
func (c *stmtCache) get(ctx context.Context, query string) *sql.Stmt {
	c.mu.Lock()
	st, ok := c.stmts[query]
	full := len(c.stmts) >= maxCachedStmts
	c.mu.Unlock()
	if ok || full {
		return st
	}
	st, err := c.db.PrepareContext(ctx, query)
	if err != nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if prev, ok := c.stmts[query]; ok {
		st.Close()
		return prev
	}
	c.stmts[query] = st
	return st
}

// close closes the cached statements.
func (c *stmtCache) close() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for q, st := range c.stmts {
		st.Close()
		delete(c.stmts, q)
	}
}
