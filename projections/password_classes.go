package projections

import (
	"context"
	"fmt"

	"github.com/jmoiron/sqlx"

	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/migrations"
)

// PasswordClassesView lists the cost classes of the imported password hashes still stored: a
// user imported with a bcrypt, scrypt, PBKDF2 or argon2 hash of another system keeps it until
// their password is next set or rehashed. Sign-in pads every failed password check with the work
// of each class present (auth.PasswordHasher.SetCostClasses), so that a slow imported hash does
// not tell a known login from an unknown one. It is safe for concurrent use.
type PasswordClassesView struct {
	view
	classOf func(encoded string) string
}

// NewPasswordClassesView returns the view over db (see Options.DB). classOf gives a hash's cost
// class (auth.CostClass): a hash of the same costs that holds no secret. A nil db or classOf, or
// an unknown dialect, is a wiring mistake and panics.
func NewPasswordClassesView(db *sqlx.DB, d migrations.Dialect, classOf func(encoded string) string) *PasswordClassesView {
	if classOf == nil {
		panic("projections: NewPasswordClassesView with a nil classOf")
	}
	return &PasswordClassesView{view: newView("NewPasswordClassesView", db, d), classOf: classOf}
}

// PasswordClassesProjector is the view's name in checkpoints, status and the command line.
const PasswordClassesProjector = "password_classes"

// Classes lists the distinct cost classes of the imported hashes still stored.
func (v *PasswordClassesView) Classes(ctx context.Context) ([]string, error) {
	var out []string
	q := `SELECT DISTINCT class FROM password_classes
		WHERE generation = (SELECT live FROM projection_generations WHERE name = 'password_classes') ORDER BY class`
	if err := v.db.SelectContext(ctx, &out, q); err != nil {
		return nil, fmt.Errorf("projections: password cost classes: %w", err)
	}
	return out, nil
}

// Name implements Projector.
func (v *PasswordClassesView) Name() string { return PasswordClassesProjector }

var passwordClassEvents = []domain.Event{domain.UserRegistered{}, domain.PasswordChanged{}, domain.PasswordReset{}, domain.PasswordRehashed{}}

// Interest implements Projector.
func (v *PasswordClassesView) Interest() Interest {
	return Interest{StreamPrefix: domain.UserStreamPrefix, Types: eventTypes(passwordClassEvents)}
}

// Tables implements Projector.
func (v *PasswordClassesView) Tables() []string { return []string{"password_classes"} }

// Apply implements Projector: an imported user's row is made by UserRegistered and goes when
// idlog sets the password's hash again.
func (v *PasswordClassesView) Apply(ctx context.Context, tx *Tx, events []eventstore.Event) error {
	if bulkFold(tx) {
		return v.applyBulk(ctx, tx, events)
	}
	for _, e := range events {
		uid, err := domain.UserIDFromStream(e.StreamID)
		if err != nil {
			return FailedAt(e, err)
		}
		de, err := tx.decode(v.reg, e)
		if err != nil {
			return FailedAt(e, err)
		}
		q, args := `DELETE FROM password_classes WHERE generation = ? AND uid = ?`, []any{tx.Generation, string(uid)}
		if reg, ok := de.(domain.UserRegistered); ok {
			if reg.CreatedAt.IsZero() { // registered here, with idlog's own argon2id
				continue
			}
			q = `INSERT INTO password_classes (generation, uid, class) VALUES (?, ?, ?)
				ON CONFLICT (generation, uid) DO UPDATE SET class = excluded.class`
			args = append(args, v.classOf(reg.PasswordHash))
		}
		if _, err := tx.ExecContext(ctx, tx.Rebind(q), args...); err != nil {
			return FailedAt(e, fmt.Errorf("write password class: %w", err))
		}
	}
	return nil
}

var _ Projector = (*PasswordClassesView)(nil)
