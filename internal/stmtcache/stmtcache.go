// Package stmtcache prepares the statements a process runs on every request once per database
// handle. database/sql then prepares each once per connection and reuses it on that connection,
// in or out of a transaction. A statement run unprepared costs the database a parse and a plan
// each time, and lib/pq a second round trip (it describes the statement before it binds it): on
// a PostgreSQL sign-in that was a third of the database's time.
package stmtcache

import (
	"context"
	"database/sql"
	"sync"

	"github.com/jmoiron/sqlx"
)

// MaxStmts bounds a Cache: statements built from their arguments (multi-row inserts of a batch's
// size) would otherwise fill it; past the bound, statements run unprepared.
const MaxStmts = 256

// Cache holds the prepared statements of one database handle. Safe for concurrent use. A nil
// Cache prepares nothing: its methods run the statements unprepared in the transaction given.
type Cache struct {
	db *sqlx.DB

	mu        sync.Mutex
	stmts     map[string]*sqlx.Stmt
	preparing map[string]bool // statements being prepared in the background
	closed    bool
}

// New returns an empty cache for db.
func New(db *sqlx.DB) *Cache {
	return &Cache{db: db, stmts: map[string]*sqlx.Stmt{}, preparing: map[string]bool{}}
}

// Len is the number of statements the cache holds.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.stmts)
}

// Stmt returns query prepared on the handle, preparing it if there is room; nil if there is none
// or the preparation failed (the statement then runs unprepared, and fails there if it must).
func (c *Cache) Stmt(ctx context.Context, query string) *sqlx.Stmt {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	st, ok := c.stmts[query]
	full := len(c.stmts)+len(c.preparing) >= MaxStmts && !c.preparing[query]
	closed := c.closed
	c.mu.Unlock()
	if ok || full || closed {
		return st
	}
	st, err := c.db.PreparexContext(ctx, query)
	if err != nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// No longer being prepared, in the same breath as cached: counted in both for a moment, it
	// would make the cache look full to a statement asking meanwhile.
	delete(c.preparing, query)
	if prev, ok := c.stmts[query]; ok {
		st.Close()
		return prev
	}
	if c.closed {
		st.Close()
		return nil
	}
	c.stmts[query] = st
	return st
}

// on returns query's statement for tx (nil: the handle), or nil to run it unprepared.
//
// In a transaction, a statement the cache does not hold yet runs unprepared, and is prepared on
// the handle in the background. Preparing it there now would take a second connection from the
// pool while the transaction holds its locks: with the pool's connections all in transactions
// waiting for those locks (SQLite's one writer, PostgreSQL's row locks), neither would move.
// A cached statement is prepared on the transaction's own connection when it is not yet.
func (c *Cache) on(ctx context.Context, tx *sqlx.Tx, query string) *sqlx.Stmt {
	if tx == nil {
		return c.Stmt(ctx, query)
	}
	if c == nil {
		return nil
	}
	c.mu.Lock()
	st, ok := c.stmts[query]
	later := !ok && !c.closed && !c.preparing[query] && len(c.stmts)+len(c.preparing) < MaxStmts
	if later {
		c.preparing[query] = true
	}
	c.mu.Unlock()
	if later {
		go func() {
			c.Stmt(context.WithoutCancel(ctx), query)
			c.mu.Lock()
			delete(c.preparing, query)
			c.mu.Unlock()
		}()
	}
	if !ok {
		return nil
	}
	return tx.StmtxContext(ctx, st)
}

// queryer is where a statement runs unprepared: tx, or the handle.
func (c *Cache) queryer(tx *sqlx.Tx) sqlx.ExtContext {
	if tx != nil {
		return tx
	}
	return c.db
}

// ExecContext runs query in tx (nil: on the handle), prepared when it can.
func (c *Cache) ExecContext(ctx context.Context, tx *sqlx.Tx, query string, args ...any) (sql.Result, error) {
	if st := c.on(ctx, tx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return c.queryer(tx).ExecContext(ctx, query, args...)
}

// QueryRowxContext runs query in tx (nil: on the handle), prepared when it can.
func (c *Cache) QueryRowxContext(ctx context.Context, tx *sqlx.Tx, query string, args ...any) *sqlx.Row {
	if st := c.on(ctx, tx, query); st != nil {
		return st.QueryRowxContext(ctx, args...)
	}
	return c.queryer(tx).QueryRowxContext(ctx, query, args...)
}

// SelectContext runs query in tx (nil: on the handle), prepared when it can, and scans every row
// into dest, as sqlx.SelectContext does.
func (c *Cache) SelectContext(ctx context.Context, tx *sqlx.Tx, dest any, query string, args ...any) error {
	if st := c.on(ctx, tx, query); st != nil {
		return st.SelectContext(ctx, dest, args...)
	}
	return sqlx.SelectContext(ctx, c.queryer(tx), dest, query, args...)
}

// GetContext runs query in tx (nil: on the handle), prepared when it can, and scans its row into
// dest, as sqlx.GetContext does (sql.ErrNoRows without one).
func (c *Cache) GetContext(ctx context.Context, tx *sqlx.Tx, dest any, query string, args ...any) error {
	if st := c.on(ctx, tx, query); st != nil {
		return st.GetContext(ctx, dest, args...)
	}
	return sqlx.GetContext(ctx, c.queryer(tx), dest, query, args...)
}

// Queries runs statements in one transaction through a cache, for callers that take an
// interface of database/sql's methods rather than a cache (lease.Check, lease.CheckAll).
type Queries struct {
	c  *Cache
	tx *sqlx.Tx
}

// In returns tx's statements through c (tx nil: the handle's).
func (c *Cache) In(tx *sqlx.Tx) Queries { return Queries{c, tx} }

// QueryRowContext runs query, prepared when it can, as sql.Tx.QueryRowContext does.
func (q Queries) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := q.c.on(ctx, q.tx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	if q.tx != nil {
		return q.tx.QueryRowContext(ctx, query, args...)
	}
	return q.c.db.QueryRowContext(ctx, query, args...)
}

// QueryContext runs query, prepared when it can, as sql.Tx.QueryContext does.
func (q Queries) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := q.c.on(ctx, q.tx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return q.c.queryer(q.tx).QueryContext(ctx, query, args...)
}

// Close closes the cached statements; the cache then runs every statement unprepared.
func (c *Cache) Close() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for q, st := range c.stmts {
		st.Close()
		delete(c.stmts, q)
	}
}
