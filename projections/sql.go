package projections

import (
	"context"
	"database/sql/driver"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/idlog/idlog/internal/sqlitebusy"
	"github.com/idlog/idlog/migrations"
)

// dialect hides the few differences between Postgres and SQLite that the queries meet: bind
// variables, row locks and how a time is stored (timestamptz there, unix microseconds here).
type dialect migrations.Dialect

func checkDialect(d migrations.Dialect) error {
	switch d {
	case migrations.Postgres, migrations.SQLite:
		return nil
	}
	return fmt.Errorf("projections: dialect %q is not postgres or sqlite", d)
}

// rebind turns ? placeholders into the dialect's.
func (d dialect) rebind(q string) string {
	if migrations.Dialect(d) == migrations.Postgres {
		return sqlx.Rebind(sqlx.DOLLAR, q)
	}
	return q
}

// lockUpdate ends a SELECT that must lock its rows. SQLite needs none: its write transactions
// hold the file's write lock from their first statement (_txlock=immediate).
func (d dialect) lockUpdate() string {
	if migrations.Dialect(d) == migrations.Postgres {
		return " FOR UPDATE"
	}
	return ""
}

// true is the literal of a true boolean column.
func (d dialect) true() string {
	if migrations.Dialect(d) == migrations.Postgres {
		return "true"
	}
	return "1"
}

// time is the value that stores t in a time column.
func (d dialect) time(t time.Time) any {
	if migrations.Dialect(d) == migrations.Postgres {
		return t.UTC()
	}
	return t.UnixMicro()
}

// sqlTime scans a time column of either dialect.
type sqlTime struct{ time.Time }

func (t *sqlTime) Scan(v any) error {
	switch v := v.(type) {
	case time.Time:
		t.Time = v.UTC()
	case int64:
		t.Time = time.UnixMicro(v).UTC()
	case nil:
		t.Time = time.Time{}
	default:
		return fmt.Errorf("projections: cannot scan %T into a time", v)
	}
	return nil
}

// Value lets a sqlTime be passed back as an argument; only tests compare such rows.
func (t sqlTime) Value() (driver.Value, error) { return t.Time, nil }

// placeholders returns "(?,?,?),(?,?,?)" for rows rows of cols columns.
func placeholders(rows, cols int) string {
	one := "(" + strings.TrimSuffix(strings.Repeat("?,", cols), ",") + ")"
	var b strings.Builder
	b.Grow(rows * (len(one) + 1))
	for i := range rows {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(one)
	}
	return b.String()
}

// maxParams bounds the bind variables of one statement, below SQLite's 32766 and Postgres's 65535.
const maxParams = 30000

// SQLiteBusyTimeout is how long a write transaction on SQLite waits for the file's write lock
// (held by the event store's writer, or by another projector) before it fails.
const SQLiteBusyTimeout = sqlitebusy.Timeout

// OpenSQLite opens the read models' connection pool on the SQLite file that holds the event log.
// The event store's own pool is read-only, so projections write through this one. Write
// transactions take the write lock when they begin (_txlock=immediate): one that began never fails
// with "database is locked" halfway, it waits (busy_timeout) at BEGIN instead. synchronous is
// NORMAL: in WAL mode a power loss may drop the last read-model commits, but never tears them, and
// the checkpoint committed with them makes the projector replay exactly what was lost.
func OpenSQLite(ctx context.Context, path string) (*sqlx.DB, error) {
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file:") {
		return nil, fmt.Errorf("projections: SQLite path (%q) must be a file path", path)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("projections: SQLite path (%q): %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return nil, fmt.Errorf("projections: create directory of %q: %w", abs, err)
	}
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", SQLiteBusyTimeout.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Set("_txlock", "immediate")
	u.RawQuery = q.Encode()
	db, err := sqlx.Open("sqlite", u.String())
	if err != nil {
		return nil, fmt.Errorf("projections: open %q: %w", abs, err)
	}
	// Writers queue on the file lock anyway; a few connections let queries run beside them.
	db.SetMaxOpenConns(8)
	db.SetMaxIdleConns(8)
	db.SetConnMaxIdleTime(5 * time.Minute)
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("projections: open %q: %w", abs, err)
	}
	return db, nil
}

// beginWrite starts a write transaction. On SQLite it takes the file's write lock at BEGIN and,
// while another connection (the event store's writer, the attempt limiter) holds it, tries again
// after a pause of a fraction of a millisecond (package sqlitebusy) instead of leaving the wait to
// SQLite's busy handler, which sleeps up to 25 ms a turn. It gives up after SQLiteBusyTimeout,
// like the busy handler would. done returns the connection to the pool; call it after the
// transaction ends.
func beginWrite(ctx context.Context, db *sqlx.DB, d dialect) (tx *sqlx.Tx, done func(), err error) {
	if migrations.Dialect(d) != migrations.SQLite {
		tx, err := db.BeginTxx(ctx, nil)
		return tx, func() {}, err
	}
	conn, done, err := sqlitebusy.Conn(ctx, db)
	if err != nil {
		return nil, nil, err
	}
	err = sqlitebusy.Retry(ctx, SQLiteBusyTimeout, func() (err error) {
		tx, err = conn.BeginTxx(ctx, nil)
		return err
	})
	if err != nil {
		done()
		return nil, nil, err
	}
	return tx, done, nil
}
