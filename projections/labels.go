package projections

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/migrations"
)

// UserLabel is one label a user holds.
type UserLabel struct {
	UID, Key, Value, Scope, Description string
	CreatedAt, UpdatedAt                time.Time
}

// LabelCount is how many users hold one key=value in one scope.
type LabelCount struct {
	Key, Value, Scope string
	Users             int
}

// LabelFilter selects the users holding a label: Key is required, Value and Scope narrow it.
// Page and Limit paginate as in UserFilter.
type LabelFilter struct {
	Key, Value, Scope string
	Page, Limit       int
}

// LabelsView is the labels read model: its projector (a Projector for the Runtime) and its
// queries. Queries read the live generation. It is safe for concurrent use.
type LabelsView struct {
	db  *sqlx.DB
	d   dialect
	reg *domain.Registry
}

// NewLabelsView returns the labels view over db, which holds the read models (see Options.DB). A
// nil db or an unknown dialect is a wiring mistake and panics.
func NewLabelsView(db *sqlx.DB, d migrations.Dialect) *LabelsView {
	if db == nil {
		panic("projections: NewLabelsView with a nil db")
	}
	if err := checkDialect(d); err != nil {
		panic(err.Error())
	}
	return &LabelsView{db: db, d: dialect(d), reg: domain.NewEventRegistry()}
}

// LabelsProjector is the labels view's name in checkpoints, status and the command line.
const LabelsProjector = "labels"

const labelsLive = `(SELECT live FROM projection_generations WHERE name = 'labels')`

const labelColumns = `uid, label_key, scope, label_value, description, created_at, updated_at`

type labelRow struct {
	UID         string  `db:"uid"`
	Key         string  `db:"label_key"`
	Scope       string  `db:"scope"`
	Value       string  `db:"label_value"`
	Description string  `db:"description"`
	CreatedAt   sqlTime `db:"created_at"`
	UpdatedAt   sqlTime `db:"updated_at"`
}

func (r labelRow) label() UserLabel {
	return UserLabel{
		UID: r.UID, Key: r.Key, Value: r.Value, Scope: r.Scope, Description: r.Description,
		CreatedAt: r.CreatedAt.Time, UpdatedAt: r.UpdatedAt.Time,
	}
}

// ForUser lists the labels of a user, by key, public before private; none is an empty list.
func (v *LabelsView) ForUser(ctx context.Context, uid string) ([]UserLabel, error) {
	var rows []labelRow
	q := v.d.rebind(`SELECT ` + labelColumns + ` FROM user_labels WHERE generation = ` + labelsLive + ` AND uid = ?
		ORDER BY label_key, scope DESC`)
	if err := v.db.SelectContext(ctx, &rows, q, uid); err != nil {
		return nil, fmt.Errorf("projections: labels of %s: %w", uid, err)
	}
	out := make([]UserLabel, len(rows))
	for i, r := range rows {
		out[i] = r.label()
	}
	return out, nil
}

// Users returns a page of the users holding the label f selects, newest first, and how many hold
// it in all. A filter without a key, or with an unknown scope, matches ErrInvalidFilter. Users the
// users view does not show yet are left out.
func (v *LabelsView) Users(ctx context.Context, f LabelFilter) (users []User, total int, err error) {
	if f.Key == "" {
		return nil, 0, &FilterError{Field: "key", Reason: "is required"}
	}
	if f.Scope != "" {
		if _, err := domain.ParseLabelScope(f.Scope); err != nil {
			return nil, 0, &FilterError{Field: "scope", Reason: fmt.Sprintf("(%q) is not public or private", f.Scope)}
		}
	}
	lim, off, err := page(f.Page, f.Limit)
	if err != nil {
		return nil, 0, err
	}
	w := where{sql: `l.generation = ` + labelsLive + ` AND l.label_key = ?`, args: []any{f.Key}}
	if f.Value != "" {
		w.add("l.label_value = ?", f.Value)
	}
	if f.Scope != "" {
		w.add("l.scope = ?", f.Scope)
	}
	// A user holding the key in both scopes is one user.
	from := `users u WHERE u.generation = ` + usersLive + ` AND u.uid IN (SELECT l.uid FROM user_labels l WHERE ` + w.sql + `)`
	var rows []userRow
	q := v.d.rebind(`SELECT ` + prefixed("u.", userColumns) + `, count(*) OVER () AS total FROM ` + from +
		` ORDER BY u.created_at DESC, u.uid DESC LIMIT ? OFFSET ?`)
	if err := v.db.SelectContext(ctx, &rows, q, append(w.args, lim, off)...); err != nil {
		return nil, 0, fmt.Errorf("projections: users with label %s: %w", f.Key, err)
	}
	users = make([]User, len(rows))
	for i, r := range rows {
		users[i] = r.user()
	}
	if len(rows) > 0 {
		return users, rows[0].Total, nil
	}
	if err := v.db.GetContext(ctx, &total, v.d.rebind(`SELECT count(*) FROM `+from), w.args...); err != nil {
		return nil, 0, fmt.Errorf("projections: count users with label %s: %w", f.Key, err)
	}
	return users, total, nil
}

// Keys lists the labels in use: every key=value of each scope, with how many users hold it, by
// key, value and scope.
func (v *LabelsView) Keys(ctx context.Context) ([]LabelCount, error) {
	var rows []struct {
		Key   string `db:"label_key"`
		Value string `db:"label_value"`
		Scope string `db:"scope"`
		Users int    `db:"users"`
	}
	q := `SELECT label_key, label_value, scope, count(*) AS users FROM user_labels WHERE generation = ` + labelsLive +
		` GROUP BY label_key, label_value, scope ORDER BY label_key, label_value, scope`
	if err := v.db.SelectContext(ctx, &rows, q); err != nil {
		return nil, fmt.Errorf("projections: label keys: %w", err)
	}
	out := make([]LabelCount, len(rows))
	for i, r := range rows {
		out[i] = LabelCount{Key: r.Key, Value: r.Value, Scope: r.Scope, Users: r.Users}
	}
	return out, nil
}

// Name implements Projector.
func (v *LabelsView) Name() string { return LabelsProjector }

var labelEvents = []domain.Event{domain.LabelAdded{}, domain.LabelUpdated{}, domain.LabelRemoved{}, domain.AccountClosed{}}

// Interest implements Projector. An event type this build does not know stops the projector: it
// may change labels, and skipping it would leave them wrong for good.
func (v *LabelsView) Interest() Interest {
	return Interest{StreamPrefix: domain.UserStreamPrefix, Types: eventTypes(labelEvents)}
}

// Tables implements Projector.
func (v *LabelsView) Tables() []string { return []string{"user_labels"} }

// Apply implements Projector, one statement per event: labels change rarely. A label added twice,
// or changed or removed without being held, fails at its event: the domain never records those,
// so the read model would be wrong.
func (v *LabelsView) Apply(ctx context.Context, tx *Tx, events []eventstore.Event) error {
	for _, e := range events {
		uid, err := domain.UserIDFromStream(e.StreamID)
		if err != nil {
			return FailedAt(e, err)
		}
		de, err := v.reg.Decode(e.Type, e.SchemaVersion, e.Data)
		if err != nil {
			return FailedAt(e, err)
		}
		at := tx.TimeArg(e.RecordedAt)
		var q string
		var args []any
		switch ev := de.(type) {
		case domain.LabelAdded:
			// DO NOTHING rather than an error: a failed statement would abort a Postgres transaction,
			// and the events before this one must still commit.
			q = `INSERT INTO user_labels (generation, ` + labelColumns + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
				ON CONFLICT (generation, uid, label_key, scope) DO NOTHING`
			args = []any{tx.Generation, string(uid), ev.Key, ev.Scope.String(), ev.Value, ev.Description, at, at}
		case domain.LabelUpdated:
			q = `UPDATE user_labels SET label_value = ?, description = ?, updated_at = ?
				WHERE generation = ? AND uid = ? AND label_key = ? AND scope = ?`
			args = []any{ev.Value, ev.Description, at, tx.Generation, string(uid), ev.Key, ev.Scope.String()}
		case domain.LabelRemoved:
			q = `DELETE FROM user_labels WHERE generation = ? AND uid = ? AND label_key = ? AND scope = ?`
			args = []any{tx.Generation, string(uid), ev.Key, ev.Scope.String()}
		case domain.AccountClosed:
			// A closed account's labels leave with it, so Keys no longer counts them; any number of
			// rows goes.
			q := `DELETE FROM user_labels WHERE generation = ? AND uid = ?`
			if _, err := tx.ExecContext(ctx, tx.Rebind(q), tx.Generation, string(uid)); err != nil {
				return FailedAt(e, fmt.Errorf("delete labels of a closed account: %w", err))
			}
			continue
		default:
			continue
		}
		res, err := tx.ExecContext(ctx, tx.Rebind(q), args...)
		if err != nil {
			return FailedAt(e, fmt.Errorf("write label: %w", err))
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("write label: %w", err)
		} else if n != 1 {
			return FailedAt(e, fmt.Errorf("%s of user %s changed %d rows, want 1", e.Type, uid, n))
		}
	}
	return nil
}

// prefixed qualifies each column of a ", "-separated list with a table alias.
func prefixed(alias, columns string) string {
	return alias + strings.ReplaceAll(columns, ", ", ", "+alias)
}

var _ Projector = (*LabelsView)(nil)
