package projections

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/internal/stmtcache"
	"github.com/idlog/idlog/migrations"
)

// Projector keeps read-model tables in step with the event log. The Runtime feeds it the global
// log in commit order, in batches, each inside a transaction that also moves the projector's
// checkpoint: Apply's writes and the checkpoint commit together or not at all.
//
// Every table a projector writes has a leading `generation` column, and Apply writes only rows
// of tx.Generation: a rebuild fills a new generation beside the live one and swaps it in.
type Projector interface {
	// Name identifies the projector in checkpoints, status, metrics and the command line. It never
	// changes.
	Name() string
	// Interest says which events reach Apply.
	Interest() Interest
	// Tables lists the projector's read-model tables, for the runtime to drop retired generations.
	Tables() []string
	// Apply writes the effect of events, in order, into generation tx.Generation. To fail at one
	// event it returns FailedAt(e, err): the events before it are then committed and the projector
	// stops at e. Any other error fails the whole batch, which the runtime then retries one event
	// per transaction to find the event that fails.
	Apply(ctx context.Context, tx *Tx, events []eventstore.Event) error
}

// Interest narrows the events a projector sees. Events outside it still move its checkpoint, so
// the projector reaches every position of the log (WaitFor relies on that).
type Interest struct {
	// StreamPrefix limits the projector to streams whose id starts with it; "" means all streams.
	StreamPrefix string
	// Types the projector handles; nil means every type this build knows. Events of a type the
	// build knows (the event registry) but the projector does not list pass it by.
	Types []string
	// SkipUnknown decides what happens at an event of a type this build does not know (written by
	// a newer version): skipped if true; if false the projector stops there, as at a failing event,
	// until a build that knows the type runs it.
	SkipUnknown bool
}

// Tx is the runtime's transaction handed to Apply.
type Tx struct {
	*sqlx.Tx
	// Generation is the generation of the tables Apply writes.
	Generation int64
	// Bulk says that the transaction is a rebuild's: a large batch into a generation nobody reads
	// yet. Apply may then write with CopyIn, which is faster for many rows.
	Bulk    bool
	dialect dialect
	shared  *batchItem // the rebuild's shared read, nil if none
	tables  map[string]string
	stmts   *stmtcache.Cache // the live runtime's prepared statements, nil in a rebuild
}

// ExecContext runs a statement in the transaction. In a live batch it runs it prepared, once per
// connection: a live batch is a few statements, and PostgreSQL (through lib/pq) spends a round
// trip parsing each unprepared one before running it.
func (tx *Tx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return tx.stmts.ExecContext(ctx, tx.Tx, query, args...)
}

// Table is the name to write table under in this transaction: a rebuild on PostgreSQL loads a
// table partitioned by generation (activity) into a detached table of its own (see
// buildTables). Statements that write such a table in a rebuild must name it so.
func (tx *Tx) Table(table string) string {
	if t, ok := tx.tables[table]; ok {
		return t
	}
	return table
}

// decode decodes e with reg, or takes the decoding the rebuild's shared read made of it.
func (tx *Tx) decode(reg *domain.Registry, e eventstore.Event) (domain.Event, error) {
	if tx.shared != nil {
		if de, ok := tx.shared.lookup(e); ok {
			return de, nil
		}
	}
	return reg.Decode(e.Type, e.SchemaVersion, e.Data)
}

// Dialect is the database's SQL dialect.
func (tx *Tx) Dialect() migrations.Dialect { return migrations.Dialect(tx.dialect) }

// Rebind turns ? placeholders into the dialect's.
func (tx *Tx) Rebind(q string) string { return tx.dialect.rebind(q) }

// TimeArg is the value that stores t in a time column (timestamptz on Postgres, unix
// microseconds on SQLite).
func (tx *Tx) TimeArg(t time.Time) any { return tx.dialect.time(t) }

// CopyIn writes rows of columns into table with one COPY on PostgreSQL, or with prepared
// multi-row INSERTs on SQLite, each row's values in the order of columns (nil for NULL). Times are
// passed as time.Time; CopyIn stores them as the dialect does, which may change rows in place.
func (tx *Tx) CopyIn(ctx context.Context, table string, columns []string, rows [][]any) error {
	if len(rows) == 0 {
		return nil
	}
	if tx.Dialect() == migrations.Postgres {
		// The table and columns are the projector's own names, never input.
		stmt, err := tx.PrepareContext(ctx, `COPY `+tx.Table(table)+` (`+strings.Join(columns, ", ")+`) FROM STDIN`)
		if err != nil {
			return err
		}
		for _, row := range rows {
			if _, err := stmt.ExecContext(ctx, row...); err != nil {
				_ = stmt.Close()
				return err
			}
		}
		if _, err := stmt.ExecContext(ctx); err != nil {
			_ = stmt.Close()
			return err
		}
		return stmt.Close()
	}
	return tx.insertRows(ctx, table, columns, rows, "")
}

// insertRows writes rows with multi-row INSERTs ending in suffix (an ON CONFLICT clause, or
// ""): a statement of copyRows rows, prepared once and run for each full chunk, and one more for
// the rest. Times (time.Time) are stored as the dialect does.
func (tx *Tx) insertRows(ctx context.Context, table string, columns []string, rows [][]any, suffix string) error {
	cols := len(columns)
	for _, row := range rows {
		for i, v := range row {
			if t, ok := v.(time.Time); ok {
				row[i] = tx.dialect.time(t)
			}
		}
	}
	insert := func(n int) string {
		return tx.Rebind(`INSERT INTO ` + table + ` (` + strings.Join(columns, ", ") + `) VALUES ` + placeholders(n, cols) + suffix)
	}
	per := min(copyRows, maxParams/cols)
	args := make([]any, 0, per*cols)
	var stmt *sql.Stmt
	defer func() {
		if stmt != nil {
			_ = stmt.Close()
		}
	}()
	for i := 0; i < len(rows); i += per {
		part := rows[i:min(i+per, len(rows))]
		args = args[:0]
		for _, row := range part {
			args = append(args, row...)
		}
		if len(part) < per {
			if _, err := tx.ExecContext(ctx, insert(len(part)), args...); err != nil {
				return err
			}
			continue
		}
		if stmt == nil {
			var err error
			if stmt, err = tx.PrepareContext(ctx, insert(per)); err != nil {
				return err
			}
		}
		if _, err := stmt.ExecContext(ctx, args...); err != nil {
			return err
		}
	}
	return nil
}

// copyRows is how many rows one prepared INSERT of insertRows writes.
const copyRows = 500

// EventError is a projector's failure at one event.
type EventError struct {
	Position uint64
	Type     string
	Err      error
}

func (e *EventError) Error() string {
	return fmt.Sprintf("projections: event %s at position %d: %v", e.Type, e.Position, e.Err)
}

func (e *EventError) Unwrap() error { return e.Err }

// FailedAt reports that Apply failed at event e.
func FailedAt(e eventstore.Event, err error) error {
	return &EventError{Position: e.GlobalPosition, Type: e.Type, Err: err}
}

// ErrUnknownEventType: a projector that does not skip unknown events met one (see Interest).
var ErrUnknownEventType = errors.New("projections: event type unknown to this build")
