package courier

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/idlog/idlog/migrations"
)

// Errors of Lister.Retry.
var (
	// ErrNotQueued: no message of that id is in the outbox (delivered, expired and deleted, or
	// never there).
	ErrNotQueued = errors.New("courier: no such message in the outbox")
	// ErrExpired: the message is past its expiry; the courier deletes it unsent.
	ErrExpired = errors.New("courier: the message has expired")
)

// QueuePage lists one page of the outbox, oldest first (page from 1, limit messages a page), and
// how many messages it holds in all: ids, kinds, attempts and errors, never a recipient or a
// payload.
func QueuePage(ctx context.Context, db *sql.DB, dialect migrations.Dialect, page, limit int) ([]Queued, int, error) {
	q := queue{db: db, dialect: dialect}
	var total int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM outbox`).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("courier: count the queue: %w", err)
	}
	rows, err := q.query(ctx, `SELECT `+rowColumns+` FROM outbox ORDER BY created_at, id LIMIT ? OFFSET ?`, limit, (page-1)*limit)
	if err != nil {
		return nil, 0, fmt.Errorf("courier: list the queue: %w", err)
	}
	return queuedOf(rows), total, nil
}

// Retry makes a message due now, with a fresh round of attempts: a dead message (delivery gave
// up) is live again, a live one skips the rest of its backoff. The courier that owns the outbox
// finds it at its next read. Errors: ErrNotQueued, ErrExpired.
func Retry(ctx context.Context, db *sql.DB, dialect migrations.Dialect, id string, now time.Time) error {
	uid, err := uuid.Parse(id)
	if err != nil {
		return fmt.Errorf("%w: %q", ErrNotQueued, id)
	}
	q := queue{db: db, dialect: dialect}
	res, err := db.ExecContext(ctx, q.rebind(`UPDATE outbox SET dead = ?, attempts = 0, next_attempt_at = ? WHERE id = ? AND expires_at > ?`),
		q.boolean(false), now.UnixMilli(), uid.String(), now.UnixMilli())
	if err != nil {
		return fmt.Errorf("courier: retry %s: %w", uid, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("courier: retry %s: %w", uid, err)
	} else if n == 1 {
		return nil
	}
	var one int
	switch err := db.QueryRowContext(ctx, q.rebind(`SELECT 1 FROM outbox WHERE id = ?`), uid.String()).Scan(&one); {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("%w: %s", ErrNotQueued, uid)
	case err != nil:
		return fmt.Errorf("courier: retry %s: %w", uid, err)
	}
	return fmt.Errorf("%w: %s", ErrExpired, uid)
}
