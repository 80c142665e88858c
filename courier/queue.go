package courier

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/idlog/idlog/lease"
	"github.com/idlog/idlog/migrations"
)

// queue is the outbox table (migration 00140) in the store's database.
type queue struct {
	db      *sql.DB
	dialect migrations.Dialect
}

// row is one outbox row.
type row struct {
	ID        uuid.UUID
	Kind      string
	Channel   string
	UID       string
	Sealed    []byte
	CreatedAt time.Time
	ExpiresAt time.Time
	NextAt    time.Time
	Attempts  int
	LastError string
	Dead      bool
}

// Queued is an outbox message as the admin route lists it: no recipient, no payload.
type Queued struct {
	ID            string    `json:"id"`
	Kind          string    `json:"kind"`
	Channel       string    `json:"channel"`
	UID           string    `json:"uid"`
	CreatedAt     time.Time `json:"created_at"`
	ExpiresAt     time.Time `json:"expires_at"`
	NextAttemptAt time.Time `json:"next_attempt_at"`
	Attempts      int       `json:"attempts"`
	LastError     string    `json:"last_error"`
	Dead          bool      `json:"dead"`
}

// rebind turns ? placeholders into $n on PostgreSQL.
func (q queue) rebind(s string) string {
	if q.dialect != migrations.Postgres {
		return s
	}
	var b strings.Builder
	n := 0
	for _, c := range s {
		if c == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

// dead is the SQL literal of a boolean column value in the dialect.
func (q queue) boolean(v bool) any {
	if q.dialect == migrations.Postgres {
		return v
	}
	if v {
		return 1
	}
	return 0
}

const rowColumns = `id, kind, channel, uid, sealed, created_at, expires_at, next_attempt_at, attempts, last_error, dead`

func scanRow(rows *sql.Rows) (row, error) {
	var r row
	var id string
	var created, expires, next int64
	var dead any
	if err := rows.Scan(&id, &r.Kind, &r.Channel, &r.UID, &r.Sealed, &created, &expires, &next, &r.Attempts, &r.LastError, &dead); err != nil {
		return row{}, err
	}
	var err error
	if r.ID, err = uuid.Parse(id); err != nil {
		return row{}, fmt.Errorf("courier: outbox id %q: %w", id, err)
	}
	r.CreatedAt, r.ExpiresAt, r.NextAt = time.UnixMilli(created).UTC(), time.UnixMilli(expires).UTC(), time.UnixMilli(next).UTC()
	switch d := dead.(type) {
	case bool:
		r.Dead = d
	case int64:
		r.Dead = d != 0
	}
	return r, nil
}

func (q queue) query(ctx context.Context, sqlText string, args ...any) ([]row, error) {
	rows, err := q.db.QueryContext(ctx, q.rebind(sqlText), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []row
	for rows.Next() {
		r, err := scanRow(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// due returns up to limit live messages whose next attempt is due at now, oldest first.
func (q queue) due(ctx context.Context, now time.Time, limit int) ([]row, error) {
	return q.query(ctx, `SELECT `+rowColumns+` FROM outbox WHERE NOT dead AND next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?`,
		now.UnixMilli(), limit)
}

// list returns up to limit messages, oldest first.
func (q queue) list(ctx context.Context, limit int) ([]row, error) {
	return q.query(ctx, `SELECT `+rowColumns+` FROM outbox ORDER BY created_at, id LIMIT ?`, limit)
}

// inTx runs f in a transaction that first checks the courier's fencing token (lease.Check).
func (q queue) inTx(ctx context.Context, f func(tx *sql.Tx) error) error {
	tx, err := q.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after commit
	if err := lease.Check(ctx, tx, q.dialect); err != nil {
		return err
	}
	if err := f(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// delivered deletes the messages, in one transaction.
func (q queue) delivered(ctx context.Context, ids []uuid.UUID) error {
	if len(ids) == 0 {
		return nil
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id.String()
	}
	in := strings.TrimSuffix(strings.Repeat("?,", len(ids)), ",")
	return q.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, q.rebind(`DELETE FROM outbox WHERE id IN (`+in+`)`), args...)
		return err
	})
}

// failed records a failed attempt: the next one at next, or none (dead).
func (q queue) failed(ctx context.Context, id uuid.UUID, attempts int, next time.Time, dead bool, reason string) error {
	return q.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, q.rebind(`UPDATE outbox SET attempts = ?, next_attempt_at = ?, dead = ?, last_error = ? WHERE id = ?`),
			attempts, next.UnixMilli(), q.boolean(dead), reason, id.String())
		return err
	})
}

// expire deletes the messages past their expiry, delivered or not, and returns how many.
func (q queue) expire(ctx context.Context, now time.Time) (int64, error) {
	var n int64
	err := q.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, q.rebind(`DELETE FROM outbox WHERE expires_at <= ?`), now.UnixMilli())
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, err
}

// oldest returns the creation time of the oldest live message, ok false if none.
func (q queue) oldest(ctx context.Context) (time.Time, bool, error) {
	var ms sql.NullInt64
	if err := q.db.QueryRowContext(ctx, `SELECT min(created_at) FROM outbox WHERE NOT dead`).Scan(&ms); err != nil {
		return time.Time{}, false, err
	}
	return time.UnixMilli(ms.Int64), ms.Valid, nil
}
