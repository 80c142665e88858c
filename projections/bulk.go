package projections

import (
	"context"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/migrations"
)

// The rebuild's batch writes of the projectors that write one statement per event live: a
// rebuild's batch (Tx.Bulk) folds its events in memory, per user, and writes the result in a few
// statements, whatever the batch's size. The live path stays one statement per event; the
// rebuild tests compare the two on both backends.

// bulkFold says whether a projector may fold tx's batch: a rebuild's.
func bulkFold(tx *Tx) bool { return tx.Bulk }

// storedTime is t as a time column holds it: on PostgreSQL microseconds, rounded (the server
// rounds the nanoseconds lib/pq sends); on SQLite unix microseconds, truncated.
func storedTime(tx *Tx, t time.Time) time.Time {
	if tx.Dialect() == migrations.Postgres {
		return t.Round(time.Microsecond).UTC()
	}
	return time.UnixMicro(t.UnixMicro()).UTC()
}

// uidChunk bounds the user ids of one IN list.
const uidChunk = 1000

// forUsers calls run for uids in chunks of at most uidChunk.
func forUsers(uids []string, run func(part []string) error) error {
	for i := 0; i < len(uids); i += uidChunk {
		if err := run(uids[i:min(i+uidChunk, len(uids))]); err != nil {
			return err
		}
	}
	return nil
}

// inUsers is q (ending in "uid IN (?)") expanded for part, with gen before it, rebound.
func inUsers(tx *Tx, q string, gen int64, part []string) (string, []any, error) {
	q, args, err := sqlx.In(q, gen, part)
	if err != nil {
		return "", nil, err
	}
	return tx.Rebind(q), args, nil
}

// applyBulk is SessionsView.Apply for a rebuild's batch: it reads the rows of the
// batch's users, applies the events to them in order as the statements of Apply would, then
// replaces those users' rows.
func (v *SessionsView) applyBulk(ctx context.Context, tx *Tx, events []eventstore.Event) error {
	var order []string // the batch's users, first seen first
	byUser := map[string]map[string]*sessionRow{}
	decoded := make([]domain.Event, len(events))
	for i, e := range events {
		uid, err := domain.UserIDFromStream(e.StreamID)
		if err != nil {
			return FailedAt(e, err)
		}
		if decoded[i], err = tx.decode(v.reg, e); err != nil {
			return FailedAt(e, err)
		}
		if byUser[string(uid)] == nil {
			byUser[string(uid)] = map[string]*sessionRow{}
			order = append(order, string(uid))
		}
	}
	var have []sessionRow
	if err := forUsers(order, func(part []string) error {
		q, args, err := inUsers(tx, `SELECT uid, sid, user_agent, user_ip, cookie, started_at, last_seen_at, expires_at
			FROM user_sessions WHERE generation = ? AND uid IN (?)`, tx.Generation, part)
		if err != nil {
			return err
		}
		var rows []sessionRow
		if err := tx.SelectContext(ctx, &rows, q, args...); err != nil {
			return err
		}
		have = append(have, rows...)
		return nil
	}); err != nil {
		return fmt.Errorf("read sessions: %w", err)
	}
	for i := range have {
		byUser[have[i].UID][have[i].SID] = &have[i]
	}
	for i, e := range events {
		uid, _ := domain.UserIDFromStream(e.StreamID)
		rows := byUser[string(uid)]
		switch ev := decoded[i].(type) {
		case domain.SessionStarted:
			at := storedTime(tx, ev.At)
			for sid, r := range rows {
				if !r.ExpiresAt.After(at) {
					delete(rows, sid)
				}
			}
			if rows[ev.SessionID] == nil {
				rows[ev.SessionID] = &sessionRow{UID: string(uid), SID: ev.SessionID, UserAgent: e.Metadata.UserAgent,
					IP: e.Metadata.IP, Cookie: ev.CSRFHash != "", StartedAt: sqlTime{at}, LastSeen: sqlTime{at},
					ExpiresAt: sqlTime{storedTime(tx, ev.ExpiresAt)}}
			}
		case domain.SessionRefreshed:
			if r := rows[ev.SessionID]; r != nil {
				r.UserAgent, r.IP, r.LastSeen, r.ExpiresAt = e.Metadata.UserAgent, e.Metadata.IP, sqlTime{storedTime(tx, ev.At)}, sqlTime{storedTime(tx, ev.ExpiresAt)}
			}
		case domain.SessionEnded:
			delete(rows, ev.SessionID)
		case domain.AccountClosed:
			clear(rows)
		}
	}
	if len(have) > 0 {
		if err := deleteUsers(ctx, tx, "user_sessions", order); err != nil {
			return fmt.Errorf("write sessions: %w", err)
		}
	}
	var out [][]any
	for _, uid := range order {
		for _, r := range byUser[uid] {
			out = append(out, []any{tx.Generation, r.UID, r.SID, r.UserAgent, r.IP, r.Cookie, r.StartedAt.Time, r.LastSeen.Time, r.ExpiresAt.Time})
		}
	}
	if err := tx.CopyIn(ctx, "user_sessions", sessionCopyColumns, out); err != nil {
		return fmt.Errorf("write sessions: %w", err)
	}
	return nil
}

// deleteUsers deletes the rows of uids in table's generation of tx.
func deleteUsers(ctx context.Context, tx *Tx, table string, uids []string) error {
	return forUsers(uids, func(part []string) error {
		q, args, err := inUsers(tx, `DELETE FROM `+table+` WHERE generation = ? AND uid IN (?)`, tx.Generation, part)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, q, args...)
		return err
	})
}

var sessionCopyColumns = []string{"generation", "uid", "sid", "user_agent", "user_ip", "cookie", "started_at", "last_seen_at", "expires_at"}

// applyBulk is PasswordClassesView.Apply for a rebuild's batch: each user's last
// event decides (a row, or none), and the batch's users' rows are replaced in two statements.
func (v *PasswordClassesView) applyBulk(ctx context.Context, tx *Tx, events []eventstore.Event) error {
	var order []string
	class := map[string]*string{} // nil: no row
	for _, e := range events {
		uid, err := domain.UserIDFromStream(e.StreamID)
		if err != nil {
			return FailedAt(e, err)
		}
		de, err := tx.decode(v.reg, e)
		if err != nil {
			return FailedAt(e, err)
		}
		var c *string
		if reg, ok := de.(domain.UserRegistered); ok {
			if reg.CreatedAt.IsZero() {
				continue
			}
			s := v.classOf(reg.PasswordHash)
			c = &s
		}
		if _, seen := class[string(uid)]; !seen {
			order = append(order, string(uid))
		}
		class[string(uid)] = c
	}
	if len(order) == 0 {
		return nil
	}
	if err := deleteUsers(ctx, tx, "password_classes", order); err != nil {
		return fmt.Errorf("write password classes: %w", err)
	}
	var out [][]any
	for _, uid := range order {
		if c := class[uid]; c != nil {
			out = append(out, []any{tx.Generation, uid, *c})
		}
	}
	if err := tx.CopyIn(ctx, "password_classes", []string{"generation", "uid", "class"}, out); err != nil {
		return fmt.Errorf("write password classes: %w", err)
	}
	return nil
}
