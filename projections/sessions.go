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

// Session is an open session of a user, as a person would recognise it: the browser or app
// (user agent) and address it was signed in or last renewed from, and when.
type Session struct {
	UID, SessionID      string
	UserAgent, IP       string
	Cookie              bool
	StartedAt, LastSeen time.Time // LastSeen: the sign-in or the last refresh
	ExpiresAt           time.Time // unless renewed before
}

// SessionsView is the sessions read model: its projector (a Projector for the Runtime) and its
// queries. It follows SessionStarted, SessionRefreshed and SessionEnded (every way a session
// ends records that one). It is safe for concurrent use.
type SessionsView struct{ view }

// NewSessionsView returns the sessions view over db (see Options.DB). A nil db or an unknown
// dialect is a wiring mistake and panics.
func NewSessionsView(db *sqlx.DB, d migrations.Dialect) *SessionsView {
	return &SessionsView{newView("NewSessionsView", db, d)}
}

// SessionsProjector is the sessions view's name in checkpoints, status and the command line.
const SessionsProjector = "sessions"

const sessionsLive = `(SELECT live FROM projection_generations WHERE name = 'sessions')`

type sessionRow struct {
	UID       string  `db:"uid"`
	SID       string  `db:"sid"`
	UserAgent string  `db:"user_agent"`
	IP        string  `db:"user_ip"`
	Cookie    bool    `db:"cookie"`
	StartedAt sqlTime `db:"started_at"`
	LastSeen  sqlTime `db:"last_seen_at"`
	ExpiresAt sqlTime `db:"expires_at"`
}

// ForUser lists the sessions of a user open at now, the most recently used first; none is an
// empty list.
func (v *SessionsView) ForUser(ctx context.Context, uid string, now time.Time) ([]Session, error) {
	var rows []sessionRow
	q := v.d.rebind(`SELECT uid, sid, user_agent, user_ip, cookie, started_at, last_seen_at, expires_at FROM user_sessions
		WHERE generation = ` + sessionsLive + ` AND uid = ? AND expires_at > ? ORDER BY last_seen_at DESC, sid`)
	if err := v.db.SelectContext(ctx, &rows, q, uid, v.d.time(now)); err != nil {
		return nil, fmt.Errorf("projections: sessions of %s: %w", uid, err)
	}
	out := make([]Session, len(rows))
	for i, r := range rows {
		out[i] = Session{
			UID: r.UID, SessionID: r.SID, UserAgent: r.UserAgent, IP: r.IP, Cookie: r.Cookie,
			StartedAt: r.StartedAt.Time, LastSeen: r.LastSeen.Time, ExpiresAt: r.ExpiresAt.Time,
		}
	}
	return out, nil
}

// Name implements Projector.
func (v *SessionsView) Name() string { return SessionsProjector }

var sessionEvents = []domain.Event{domain.SessionStarted{}, domain.SessionRefreshed{}, domain.SessionEnded{}, domain.AccountClosed{}}

// Interest implements Projector. An event type this build does not know stops the projector: it
// may end a session, and skipping it would show a closed session as open.
func (v *SessionsView) Interest() Interest {
	return Interest{StreamPrefix: domain.UserStreamPrefix, Types: eventTypes(sessionEvents)}
}

// Tables implements Projector.
func (v *SessionsView) Tables() []string { return []string{"user_sessions"} }

// Apply implements Projector, one or two statements per event. A refresh or an end of a session
// the view does not hold (started before this projector existed) changes nothing: the view shows
// the sessions it saw start.
func (v *SessionsView) Apply(ctx context.Context, tx *Tx, events []eventstore.Event) error {
	if bulkFold(tx) {
		return v.applyBulk(ctx, tx, events)
	}
	for _, e := range events {
		uid, err := domain.UserIDFromStream(e.StreamID)
		if err != nil {
			return FailedAt(e, err)
		}
		de, err := v.reg.Decode(e.Type, e.SchemaVersion, e.Data)
		if err != nil {
			return FailedAt(e, err)
		}
		var stmts []struct {
			q    string
			args []any
		}
		add := func(q string, args ...any) {
			stmts = append(stmts, struct {
				q    string
				args []any
			}{q, args})
		}
		switch ev := de.(type) {
		case domain.SessionStarted:
			// The user's expired sessions go first, so the table holds about the open ones.
			add(`DELETE FROM user_sessions WHERE generation = ? AND uid = ? AND expires_at <= ?`, tx.Generation, string(uid), tx.TimeArg(ev.At))
			add(`INSERT INTO user_sessions (generation, uid, sid, user_agent, user_ip, cookie, started_at, last_seen_at, expires_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (generation, uid, sid) DO NOTHING`,
				tx.Generation, string(uid), ev.SessionID, e.Metadata.UserAgent, e.Metadata.IP, ev.CSRFHash != "",
				tx.TimeArg(ev.At), tx.TimeArg(ev.At), tx.TimeArg(ev.ExpiresAt))
		case domain.SessionRefreshed:
			add(`UPDATE user_sessions SET user_agent = ?, user_ip = ?, last_seen_at = ?, expires_at = ?
				WHERE generation = ? AND uid = ? AND sid = ?`,
				e.Metadata.UserAgent, e.Metadata.IP, tx.TimeArg(ev.At), tx.TimeArg(ev.ExpiresAt), tx.Generation, string(uid), ev.SessionID)
		case domain.SessionEnded:
			add(`DELETE FROM user_sessions WHERE generation = ? AND uid = ? AND sid = ?`, tx.Generation, string(uid), ev.SessionID)
		case domain.AccountClosed:
			add(`DELETE FROM user_sessions WHERE generation = ? AND uid = ?`, tx.Generation, string(uid))
		}
		for _, s := range stmts {
			if _, err := tx.ExecContext(ctx, tx.Rebind(s.q), s.args...); err != nil {
				return FailedAt(e, fmt.Errorf("write session: %w", err))
			}
		}
	}
	return nil
}

var _ Projector = (*SessionsView)(nil)
