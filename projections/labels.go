package projections

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

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
type LabelsView struct{ view }

// NewLabelsView returns the labels view over db, which holds the read models (see Options.DB). A
// nil db or an unknown dialect is a wiring mistake and panics.
func NewLabelsView(db *sqlx.DB, d migrations.Dialect) *LabelsView {
	return &LabelsView{newView("NewLabelsView", db, d)}
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

// Apply implements Projector. It loads the labels of the batch's users once, applies the events
// in memory, then writes each of those users' labels back: a delete of their rows, if they had
// any, and one bulk insert of what they hold now. A label added twice, or changed or removed
// without being held, fails at its event: the domain never records those, so the read model would
// be wrong.
func (v *LabelsView) Apply(ctx context.Context, tx *Tx, events []eventstore.Event) error {
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
		switch de.(type) {
		case domain.LabelAdded, domain.LabelUpdated, domain.LabelRemoved, domain.AccountClosed:
		default:
			continue
		}
		batch = append(batch, decoded{e, string(uid), de})
		if !seen[string(uid)] {
			seen[string(uid)] = true
			uids = append(uids, string(uid))
		}
	}
	if len(batch) == 0 {
		return nil
	}

	// The users' labels, by uid then key and scope.
	type key struct{ key, scope string }
	held := make(map[string]map[key]*labelRow, len(uids))
	var had []string // users that had rows before the batch
	const chunk = 1000
	for i := 0; i < len(uids); i += chunk {
		part := uids[i:min(i+chunk, len(uids))]
		q, args, err := sqlx.In(`SELECT `+labelColumns+` FROM user_labels WHERE generation = ? AND uid IN (?)`, tx.Generation, part)
		if tx.Dialect() == migrations.Postgres {
			q, args = `SELECT `+labelColumns+` FROM user_labels WHERE generation = ? AND uid = ANY (?)`, []any{tx.Generation, pq.Array(part)}
		}
		if err != nil {
			return err
		}
		var rows []labelRow
		if err := tx.SelectContext(ctx, &rows, tx.Rebind(q), args...); err != nil {
			return fmt.Errorf("load labels: %w", err)
		}
		for j := range rows {
			r := &rows[j]
			if held[r.UID] == nil {
				held[r.UID] = map[key]*labelRow{}
				had = append(had, r.UID)
			}
			held[r.UID][key{r.Key, r.Scope}] = r
		}
	}
	for _, d := range batch {
		labels := held[d.uid]
		if labels == nil {
			labels = map[key]*labelRow{}
			held[d.uid] = labels
		}
		at := sqlTime{d.e.RecordedAt}
		switch ev := d.de.(type) {
		case domain.LabelAdded:
			k := key{ev.Key, ev.Scope.String()}
			if labels[k] != nil {
				return FailedAt(d.e, fmt.Errorf("%s of user %s: the label %s (%s) is held already", d.e.Type, d.uid, k.key, k.scope))
			}
			labels[k] = &labelRow{UID: d.uid, Key: k.key, Scope: k.scope, Value: ev.Value, Description: ev.Description, CreatedAt: at, UpdatedAt: at}
		case domain.LabelUpdated:
			l := labels[key{ev.Key, ev.Scope.String()}]
			if l == nil {
				return FailedAt(d.e, fmt.Errorf("%s of user %s: the label %s (%s) is not held", d.e.Type, d.uid, ev.Key, ev.Scope))
			}
			l.Value, l.Description, l.UpdatedAt = ev.Value, ev.Description, at
		case domain.LabelRemoved:
			k := key{ev.Key, ev.Scope.String()}
			if labels[k] == nil {
				return FailedAt(d.e, fmt.Errorf("%s of user %s: the label %s (%s) is not held", d.e.Type, d.uid, k.key, k.scope))
			}
			delete(labels, k)
		case domain.AccountClosed:
			// A closed account's labels leave with it, so Keys no longer counts them.
			clear(labels)
		}
	}

	for i := 0; i < len(had); i += chunk {
		q, args, err := sqlx.In(`DELETE FROM user_labels WHERE generation = ? AND uid IN (?)`, tx.Generation, had[i:min(i+chunk, len(had))])
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, tx.Rebind(q), args...); err != nil {
			return fmt.Errorf("write labels: %w", err)
		}
	}
	var rows [][]any
	for _, uid := range uids {
		for _, l := range held[uid] {
			rows = append(rows, []any{tx.Generation, l.UID, l.Key, l.Scope, l.Value, l.Description, l.CreatedAt.Time, l.UpdatedAt.Time})
		}
	}
	if err := tx.CopyIn(ctx, "user_labels", labelCopyColumns, rows); err != nil {
		return fmt.Errorf("write labels: %w", err)
	}
	return nil
}

var labelCopyColumns = []string{"generation", "uid", "label_key", "scope", "label_value", "description", "created_at", "updated_at"}

// prefixed qualifies each column of a ", "-separated list with a table alias.
func prefixed(alias, columns string) string {
	return alias + strings.ReplaceAll(columns, ", ", ", "+alias)
}

var _ Projector = (*LabelsView)(nil)
