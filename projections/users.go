package projections

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/migrations"
)

// User is the current view of one user.
type User struct {
	UID, Email, Username, Role, State string
	// Level is the one the user's private labels grant (LevelChanged).
	Level              int
	OTP, EmailVerified bool
	// LoginDisabled: an administrator turned the user's sign-in off, beside the state.
	LoginDisabled bool
	Data          json.RawMessage // nil when the user has none
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// UsersView is the users read model: its projector (a Projector for the Runtime) and its
// queries. Queries read the live generation. A closed account (AccountClosed) leaves it: its row
// is deleted, and its email may come back as another user's. It is safe for concurrent use.
type UsersView struct{ view }

// NewUsersView returns the users view over db, which holds the read models (see Options.DB). A
// nil db or an unknown dialect is a wiring mistake and panics.
func NewUsersView(db *sqlx.DB, d migrations.Dialect) *UsersView {
	return &UsersView{newView("NewUsersView", db, d)}
}

// UsersProjector is the users view's name in checkpoints, status and the command line.
const UsersProjector = "users"

// usersLive selects the live generation of the users table.
const usersLive = `(SELECT live FROM projection_generations WHERE name = 'users')`

const userColumns = `uid, email, username, role, level, state, otp, data, email_verified, created_at, updated_at, login_disabled`

type userRow struct {
	UID           string         `db:"uid"`
	Email         string         `db:"email"`
	Username      sql.NullString `db:"username"`
	Role          string         `db:"role"`
	Level         int            `db:"level"`
	State         string         `db:"state"`
	OTP           bool           `db:"otp"`
	Data          sql.NullString `db:"data"`
	EmailVerified bool           `db:"email_verified"`
	CreatedAt     sqlTime        `db:"created_at"`
	UpdatedAt     sqlTime        `db:"updated_at"`
	LoginDisabled bool           `db:"login_disabled"`
	Total         int            `db:"total"` // count(*) OVER () in List, else 0
}

func (r userRow) user() User {
	u := User{
		UID: r.UID, Email: r.Email, Username: r.Username.String, Role: r.Role, State: r.State,
		Level: r.Level, OTP: r.OTP, EmailVerified: r.EmailVerified, LoginDisabled: r.LoginDisabled,
		CreatedAt: r.CreatedAt.Time, UpdatedAt: r.UpdatedAt.Time,
	}
	if r.Data.Valid {
		u.Data = json.RawMessage(r.Data.String)
	}
	return u
}

// ByUID returns the user with that id, or ErrNotFound.
func (v *UsersView) ByUID(ctx context.Context, uid string) (User, error) {
	return v.one(ctx, "uid", uid)
}

// ByEmail returns the user with that email (compared in normalised form), or ErrNotFound.
func (v *UsersView) ByEmail(ctx context.Context, email string) (User, error) {
	return v.one(ctx, "email", strings.ToLower(strings.TrimSpace(email)))
}

// ByUsername returns the user with that username (compared in normalised form), or ErrNotFound.
func (v *UsersView) ByUsername(ctx context.Context, username string) (User, error) {
	return v.one(ctx, "username", strings.ToLower(strings.TrimSpace(username)))
}

func (v *UsersView) one(ctx context.Context, column, value string) (User, error) {
	if value == "" {
		return User{}, fmt.Errorf("%w: user with empty %s", ErrNotFound, column)
	}
	var rows []userRow
	// The log's unique keys make a value unique among current users; updated_at breaks a tie
	// anyway, should the read model ever hold one.
	q := v.d.rebind(`SELECT ` + userColumns + ` FROM users WHERE generation = ` + usersLive + ` AND ` + column + ` = ?
		ORDER BY updated_at DESC LIMIT 1`)
	if err := v.stmts.SelectContext(ctx, nil, &rows, q, value); err != nil {
		return User{}, fmt.Errorf("projections: user by %s: %w", column, err)
	}
	if len(rows) == 0 {
		return User{}, fmt.Errorf("%w: user with %s %q", ErrNotFound, column, value)
	}
	return rows[0].user(), nil
}

// UserFilter narrows List. Zero fields do not filter; From and To bound created_at (From
// included, To excluded). Page and Limit paginate (page 1, limit 100 by default; limit at most 100).
type UserFilter struct {
	UID, Email, Username, Role, State string
	// FirstName and LastName match a profile's names whatever their case; Country its ISO 3166-1
	// alpha-2 code. A user without a profile matches none of them.
	FirstName, LastName, Country string
	Level                        *int
	OTP                          *bool
	From, To                     time.Time
	Page, Limit                  int
}

// List returns a page of the users matching f, newest first, and how many match in all. A bad
// filter returns an error matching ErrInvalidFilter.
func (v *UsersView) List(ctx context.Context, f UserFilter) (users []User, total int, err error) {
	lim, off, err := page(f.Page, f.Limit)
	if err != nil {
		return nil, 0, err
	}
	if err := timeRange(f.From, f.To); err != nil {
		return nil, 0, err
	}
	w := where{sql: `generation = ` + usersLive}
	if f.UID != "" {
		if _, err := domain.ParseUserID(f.UID); err != nil {
			return nil, 0, &FilterError{Field: "uid", Reason: fmt.Sprintf("(%q) is not a user id", f.UID)}
		}
		w.add("uid = ?", f.UID)
	}
	if f.Email != "" {
		w.add("email = ?", strings.ToLower(strings.TrimSpace(f.Email)))
	}
	if f.Username != "" {
		w.add("username = ?", strings.ToLower(strings.TrimSpace(f.Username)))
	}
	if f.OTP != nil {
		w.add("otp = ?", *f.OTP)
	}
	if f.Role != "" {
		if _, err := domain.ParseRole(f.Role); err != nil {
			return nil, 0, &FilterError{Field: "role", Reason: fmt.Sprintf("(%q) is not a role", f.Role)}
		}
		w.add("role = ?", f.Role)
	}
	if f.State != "" {
		if _, err := domain.ParseState(f.State); err != nil {
			return nil, 0, &FilterError{Field: "state", Reason: fmt.Sprintf("(%q) is not a state", f.State)}
		}
		w.add("state = ?", f.State)
	}
	if f.Level != nil {
		if *f.Level < 0 {
			return nil, 0, &FilterError{Field: "level", Reason: fmt.Sprintf("(%d) cannot be negative", *f.Level)}
		}
		w.add("level = ?", *f.Level)
	}
	if f.FirstName != "" || f.LastName != "" || f.Country != "" {
		p := where{sql: `generation = ` + profilesLive + ` AND state <> ''`}
		if f.FirstName != "" {
			p.add("lower(first_name) = lower(?)", strings.TrimSpace(f.FirstName))
		}
		if f.LastName != "" {
			p.add("lower(last_name) = lower(?)", strings.TrimSpace(f.LastName))
		}
		if f.Country != "" {
			p.add("country = ?", strings.ToUpper(strings.TrimSpace(f.Country)))
		}
		w.add("uid IN (SELECT uid FROM user_profiles WHERE "+p.sql+")", p.args...)
	}
	if !f.From.IsZero() {
		w.add("created_at >= ?", v.d.time(f.From))
	}
	if !f.To.IsZero() {
		w.add("created_at < ?", v.d.time(f.To))
	}
	var rows []userRow
	q := v.d.rebind(`SELECT ` + userColumns + `, count(*) OVER () AS total FROM users WHERE ` + w.sql +
		` ORDER BY created_at DESC, uid DESC LIMIT ? OFFSET ?`)
	if err := v.db.SelectContext(ctx, &rows, q, append(w.args, lim, off)...); err != nil {
		return nil, 0, fmt.Errorf("projections: list users: %w", err)
	}
	users = make([]User, len(rows))
	for i, r := range rows {
		users[i] = r.user()
	}
	if len(rows) > 0 {
		return users, rows[0].Total, nil
	}
	// A page past the end has no row to carry the total.
	if err := v.db.GetContext(ctx, &total, v.d.rebind(`SELECT count(*) FROM users WHERE `+w.sql), w.args...); err != nil {
		return nil, 0, fmt.Errorf("projections: count users: %w", err)
	}
	return users, total, nil
}

// Name implements Projector.
func (v *UsersView) Name() string { return UsersProjector }

// usersEvents are the events that change a user's row. The others of a user's stream (sign-ins,
// token requests, OTP secrets and checks) pass by.
var usersEvents = []domain.Event{
	domain.UserRegistered{}, domain.EmailVerified{}, domain.PasswordChanged{}, domain.PasswordReset{},
	domain.EmailChanged{}, domain.UsernameChanged{}, domain.UserDataUpdated{}, domain.OTPEnabled{},
	domain.OTPDisabled{}, domain.UserStateChanged{}, domain.RoleChanged{}, domain.UserDeleted{},
	domain.LevelChanged{}, domain.LoginDisabled{}, domain.LoginEnabled{}, domain.AccountClosed{},
}

// Interest implements Projector. An event type this build does not know stops the projector: it
// may change users, and skipping it would leave their rows wrong for good.
func (v *UsersView) Interest() Interest {
	return Interest{StreamPrefix: domain.UserStreamPrefix, Types: eventTypes(usersEvents)}
}

// Tables implements Projector.
func (v *UsersView) Tables() []string { return []string{"users"} }

func eventTypes(events []domain.Event) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.EventType()
	}
	return out
}

// Apply implements Projector. It loads the batch's users once, applies the events in memory and
// writes each changed user back with one multi-row upsert, then deletes the rows of the accounts
// the batch closed.
func (v *UsersView) Apply(ctx context.Context, tx *Tx, events []eventstore.Event) error {
	type decoded struct {
		e   eventstore.Event
		uid string
		de  domain.Event
	}
	batch := make([]decoded, 0, len(events))
	var uids []string
	seen := map[string]bool{}
	for _, e := range events {
		uid, err := domain.UserIDFromStream(e.StreamID)
		if err != nil {
			return FailedAt(e, err)
		}
		de, err := tx.decode(v.reg, e)
		if err != nil {
			return FailedAt(e, err)
		}
		batch = append(batch, decoded{e, string(uid), de})
		if !seen[string(uid)] {
			seen[string(uid)] = true
			uids = append(uids, string(uid))
		}
	}

	state := make(map[string]*userRow, len(uids))
	const chunk = 1000
	for i := 0; i < len(uids); i += chunk {
		part := uids[i:min(i+chunk, len(uids))]
		q, args, err := sqlx.In(`SELECT `+userColumns+` FROM users WHERE generation = ? AND uid IN (?)`, tx.Generation, part)
		if tx.Dialect() == migrations.Postgres {
			q, args = `SELECT `+userColumns+` FROM users WHERE generation = ? AND uid = ANY (?)`, []any{tx.Generation, pq.Array(part)}
		}
		if err != nil {
			return err
		}
		var rows []userRow
		if err := tx.SelectContext(ctx, &rows, tx.Rebind(q), args...); err != nil {
			return fmt.Errorf("load users: %w", err)
		}
		for j := range rows {
			state[rows[j].UID] = &rows[j]
		}
	}

	var dirty []*userRow
	isDirty := map[string]bool{}
	var closed []string
	for _, d := range batch {
		if _, ok := d.de.(domain.AccountClosed); ok {
			if state[d.uid] == nil {
				return FailedAt(d.e, fmt.Errorf("user %s has no UserRegistered before this event", d.uid))
			}
			// Nothing follows a closure in a user's stream (the domain refuses it), so the row can go.
			delete(state, d.uid)
			closed = append(closed, d.uid)
			continue
		}
		u := state[d.uid]
		if reg, ok := d.de.(domain.UserRegistered); ok {
			if u != nil {
				return FailedAt(d.e, fmt.Errorf("user %s is registered already", d.uid))
			}
			u = &userRow{
				UID: d.uid, Email: reg.Email, Username: sql.NullString{String: reg.Username, Valid: reg.Username != ""},
				Role: reg.Role.String(), State: domain.StateActive.String(),
				CreatedAt: sqlTime{d.e.RecordedAt},
			}
			if !reg.CreatedAt.IsZero() { // imported: created in the system it came from
				u.CreatedAt = sqlTime{reg.CreatedAt}
			}
			if len(reg.Data) > 0 && string(reg.Data) != "null" {
				u.Data = sql.NullString{String: string(reg.Data), Valid: true}
			}
			state[d.uid] = u
		} else if u == nil {
			return FailedAt(d.e, fmt.Errorf("user %s has no UserRegistered before this event", d.uid))
		}
		applyUser(u, d.de)
		u.UpdatedAt = sqlTime{d.e.RecordedAt}
		if !isDirty[d.uid] {
			isDirty[d.uid] = true
			dirty = append(dirty, u)
		}
	}
	live := dirty[:0]
	for _, u := range dirty {
		if state[u.UID] == u {
			live = append(live, u)
		}
	}
	if err := v.upsert(ctx, tx, live); err != nil {
		return err
	}
	return v.remove(ctx, tx, closed)
}

// remove deletes the rows of closed accounts.
func (v *UsersView) remove(ctx context.Context, tx *Tx, uids []string) error {
	const chunk = 1000
	for i := 0; i < len(uids); i += chunk {
		q, args, err := sqlx.In(`DELETE FROM users WHERE generation = ? AND uid IN (?)`, tx.Generation, uids[i:min(i+chunk, len(uids))])
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, tx.Rebind(q), args...); err != nil {
			return fmt.Errorf("delete closed users: %w", err)
		}
	}
	return nil
}

// applyUser changes a user's row by one event, as domain.User does with its own state.
func applyUser(u *userRow, e domain.Event) {
	switch e := e.(type) {
	case domain.EmailVerified:
		if e.Email == u.Email {
			u.EmailVerified = true
		}
	case domain.EmailChanged:
		u.Email, u.EmailVerified = e.To, false
	case domain.UsernameChanged:
		u.Username = sql.NullString{String: e.To, Valid: e.To != ""}
	case domain.UserDataUpdated:
		u.Data = sql.NullString{String: string(e.Data), Valid: len(e.Data) > 0 && string(e.Data) != "null"}
	case domain.OTPEnabled:
		u.OTP = true
	case domain.OTPDisabled:
		u.OTP = false
	case domain.UserStateChanged:
		u.State = e.To.String()
	case domain.RoleChanged:
		u.Role = e.To.String()
	case domain.LevelChanged:
		u.Level = e.To
	case domain.UserDeleted:
		u.State = domain.StateDeleted.String()
	case domain.LoginDisabled:
		u.LoginDisabled = true
	case domain.LoginEnabled:
		u.LoginDisabled = false
	}
}

func (v *UsersView) upsert(ctx context.Context, tx *Tx, rows []*userRow) error {
	if len(rows) == 0 {
		return nil
	}
	const onConflict = `
		ON CONFLICT (generation, uid) DO UPDATE SET email = excluded.email, username = excluded.username,
		role = excluded.role, level = excluded.level, state = excluded.state, otp = excluded.otp, data = excluded.data,
		email_verified = excluded.email_verified, updated_at = excluded.updated_at, login_disabled = excluded.login_disabled`
	if tx.Dialect() == migrations.Postgres {
		// One array per column: one short statement whatever the batch, where a VALUES list of
		// thousands of parameters costs Postgres more to parse and plan than to write.
		n := len(rows)
		uid, email, username, role, state, data := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		level, created, updated := make([]int64, n), make([]int64, n), make([]int64, n)
		otp, verified, disabled := make([]bool, n), make([]bool, n), make([]bool, n)
		for i, u := range rows {
			uid[i], email[i], username[i], role[i], state[i], data[i] = u.UID, u.Email, u.Username.String, u.Role, u.State, u.Data.String
			level[i], created[i], updated[i] = int64(u.Level), u.CreatedAt.UnixMicro(), u.UpdatedAt.UnixMicro()
			otp[i], verified[i], disabled[i] = u.OTP, u.EmailVerified, u.LoginDisabled
		}
		q := `INSERT INTO users (generation, ` + userColumns + `)
			SELECT $1, x.uid, x.email, NULLIF(x.username, ''), x.role, x.level, x.state, x.otp, NULLIF(x.data, ''), x.verified,
				timestamptz 'epoch' + x.created * interval '1 microsecond', timestamptz 'epoch' + x.updated * interval '1 microsecond', x.disabled
			FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::int[], $7::text[], $8::bool[], $9::text[], $10::bool[], $11::bigint[], $12::bigint[], $13::bool[])
				AS x(uid, email, username, role, level, state, otp, data, verified, created, updated, disabled)` + onConflict
		_, err := tx.ExecContext(ctx, q, tx.Generation, pq.Array(uid), pq.Array(email), pq.Array(username), pq.Array(role),
			pq.Array(level), pq.Array(state), pq.Array(otp), pq.Array(data), pq.Array(verified), pq.Array(created), pq.Array(updated), pq.Array(disabled))
		if err != nil {
			return fmt.Errorf("write users: %w", err)
		}
		return nil
	}
	values := make([][]any, len(rows))
	for i, u := range rows {
		values[i] = []any{tx.Generation, u.UID, u.Email, nullString(u.Username), u.Role, u.Level, u.State, u.OTP,
			nullString(u.Data), u.EmailVerified, u.CreatedAt.Time, u.UpdatedAt.Time, u.LoginDisabled}
	}
	if err := tx.insertRows(ctx, "users", userWriteColumns, values, onConflict); err != nil {
		return fmt.Errorf("write users: %w", err)
	}
	return nil
}

// userWriteColumns are the columns upsert writes: generation and userColumns.
var userWriteColumns = []string{"generation", "uid", "email", "username", "role", "level", "state", "otp", "data",
	"email_verified", "created_at", "updated_at", "login_disabled"}

var _ Projector = (*UsersView)(nil)
