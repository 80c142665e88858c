package projections

import (
	"context"
	"fmt"
	"time"

	"github.com/lib/pq"

	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/migrations"
)

// The rebuild's batch writes of the projectors that write one statement per event live: a
// rebuild's batch on PostgreSQL (Tx.Bulk) folds its events in memory, per user, and writes the
// result in a few statements, whatever the batch's size. The live path stays one statement per
// event; the rebuild tests compare the two.

// bulkPostgres says whether a projector may fold tx's batch: a rebuild's, on PostgreSQL.
func bulkPostgres(tx *Tx) bool { return tx.Bulk && tx.Dialect() == migrations.Postgres }

// pgTime is t as a PostgreSQL timestamptz holds it: microseconds, rounded (the server rounds the
// nanoseconds lib/pq sends).
func pgTime(t time.Time) time.Time { return t.Round(time.Microsecond).UTC() }

// applyBulk is SessionsView.Apply for a rebuild's batch on PostgreSQL: it reads the rows of the
// batch's users, applies the events to them in order as the statements of Apply would, then
// replaces those users' rows.
func (v *SessionsView) applyBulk(ctx context.Context, tx *Tx, events []eventstore.Event) error {
	type key struct{ uid, sid string }
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
	if err := tx.SelectContext(ctx, &have, `SELECT uid, sid, user_agent, user_ip, cookie, started_at, last_seen_at, expires_at
		FROM user_sessions WHERE generation = $1 AND uid = ANY($2)`, tx.Generation, pq.Array(order)); err != nil {
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
			at := pgTime(ev.At)
			for sid, r := range rows {
				if !r.ExpiresAt.After(at) {
					delete(rows, sid)
				}
			}
			if rows[ev.SessionID] == nil {
				rows[ev.SessionID] = &sessionRow{UID: string(uid), SID: ev.SessionID, UserAgent: e.Metadata.UserAgent,
					IP: e.Metadata.IP, Cookie: ev.CSRFHash != "", StartedAt: sqlTime{at}, LastSeen: sqlTime{at},
					ExpiresAt: sqlTime{pgTime(ev.ExpiresAt)}}
			}
		case domain.SessionRefreshed:
			if r := rows[ev.SessionID]; r != nil {
				r.UserAgent, r.IP, r.LastSeen, r.ExpiresAt = e.Metadata.UserAgent, e.Metadata.IP, sqlTime{pgTime(ev.At)}, sqlTime{pgTime(ev.ExpiresAt)}
			}
		case domain.SessionEnded:
			delete(rows, ev.SessionID)
		case domain.AccountClosed:
			clear(rows)
		}
	}
	if len(have) > 0 {
		if _, err := tx.ExecContext(ctx, `DELETE FROM user_sessions WHERE generation = $1 AND uid = ANY($2)`,
			tx.Generation, pq.Array(order)); err != nil {
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

var sessionCopyColumns = []string{"generation", "uid", "sid", "user_agent", "user_ip", "cookie", "started_at", "last_seen_at", "expires_at"}

// applyBulk is PasswordClassesView.Apply for a rebuild's batch on PostgreSQL: each user's last
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
	if _, err := tx.ExecContext(ctx, `DELETE FROM password_classes WHERE generation = $1 AND uid = ANY($2)`,
		tx.Generation, pq.Array(order)); err != nil {
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
