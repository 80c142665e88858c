package projections

import (
	"context"
	"database/sql"
	"fmt"
	"sync"

	"github.com/jmoiron/sqlx"

	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/migrations"
)

// Profile is a user with their labels and balances: what GET /users/me shows.
type Profile struct {
	User   User
	Labels []UserLabel // by key, public before private; empty, not nil, when none
	Wallet Balances
	// StreamVersion is the version of the user's last event in the event store, read in the same
	// statement, by a view made WithStreamVersions; 0 otherwise.
	StreamVersion uint64
}

// ProfileView reads profiles from the users, labels and wallet read models in one query, prepared
// once per connection: one round trip to PostgreSQL instead of six (three queries, each parsed
// then run). It reads the live generation of each view. It is safe for concurrent use.
type ProfileView struct {
	db       *sqlx.DB
	d        migrations.Dialect
	q        string
	versions bool // the query reads the user's stream version too

	mu   sync.Mutex
	stmt *sqlx.Stmt // prepared on first use; nil until then, or after a failure
}

// NewProfileView returns the view over db, which holds the read models. A nil db or an unknown
// dialect is a wiring mistake and panics.
func NewProfileView(db *sqlx.DB, d migrations.Dialect) *ProfileView {
	if db == nil {
		panic("projections: NewProfileView with a nil db")
	}
	if err := checkDialect(d); err != nil {
		panic(err.Error())
	}
	return &ProfileView{db: db, d: d, q: profileQuery(d, "0")}
}

// WithStreamVersions returns a view whose profiles also carry the version of the user's last
// event (Profile.StreamVersion), read in the same statement from the event store's table: for a
// caller who checks the user's session with it (commands.SessionCheck.OpenAt), so that GET
// /users/me takes one round trip. Only for an event store in the same database (the PostgreSQL and
// SQLite stores), which the view cannot tell: elsewhere that table is empty.
func (v *ProfileView) WithStreamVersions() *ProfileView {
	return &ProfileView{db: v.db, d: v.d, versions: true, q: profileQuery(v.d,
		`(SELECT coalesce(max(stream_version), 0) FROM events WHERE stream_id = ?)`)}
}

// ReadsStreamVersions tells whether the profiles carry their StreamVersion (WithStreamVersions).
func (v *ProfileView) ReadsStreamVersions() bool { return v.versions }

// profileQuery is the profile query, with version as the stream_version column: a literal, or a
// subquery of the user's stream (its one argument, before the uid).
func profileQuery(d migrations.Dialect, version string) string {
	// One row per label, or one row with no label; the user's columns repeat on each.
	return dialect(d).rebind(`SELECT ` + version + ` AS stream_version, u.uid, u.email, u.username, u.role, u.level, u.state, u.otp, u.data, u.email_verified,
			u.created_at, u.updated_at, u.login_disabled,
			w.free, w.standard, w.updated_at AS wallet_updated_at,
			l.label_key, l.scope, l.label_value, l.description, l.created_at AS label_created_at, l.updated_at AS label_updated_at
		FROM (SELECT ` + userColumns + ` FROM users WHERE generation = ` + usersLive + ` AND uid = ?
			ORDER BY updated_at DESC LIMIT 1) u
		LEFT JOIN wallets w ON w.generation = ` + walletsLive + ` AND w.uid = u.uid
		LEFT JOIN user_labels l ON l.generation = ` + labelsLive + ` AND l.uid = u.uid
		ORDER BY l.label_key, l.scope DESC`)
}

type profileRow struct {
	StreamVersion int64 `db:"stream_version"`
	userRow
	Free            sql.NullInt64  `db:"free"`
	Standard        sql.NullInt64  `db:"standard"`
	WalletUpdatedAt sqlTime        `db:"wallet_updated_at"`
	LabelKey        sql.NullString `db:"label_key"`
	Scope           sql.NullString `db:"scope"`
	LabelValue      sql.NullString `db:"label_value"`
	Description     sql.NullString `db:"description"`
	LabelCreatedAt  sqlTime        `db:"label_created_at"`
	LabelUpdatedAt  sqlTime        `db:"label_updated_at"`
}

// ByUID returns the profile of the user with that id, or ErrNotFound.
func (v *ProfileView) ByUID(ctx context.Context, uid string) (Profile, error) {
	if uid == "" {
		return Profile{}, fmt.Errorf("%w: user with empty uid", ErrNotFound)
	}
	stmt, err := v.prepared(ctx)
	if err != nil {
		return Profile{}, err
	}
	args := []any{uid}
	if v.versions {
		args = []any{domain.UserID(uid).Stream(), uid}
	}
	var rows []profileRow
	if err := stmt.SelectContext(ctx, &rows, args...); err != nil {
		return Profile{}, fmt.Errorf("projections: profile of %s: %w", uid, err)
	}
	if len(rows) == 0 {
		return Profile{}, fmt.Errorf("%w: user with uid %q", ErrNotFound, uid)
	}
	r := rows[0]
	p := Profile{
		User:          r.user(),
		Labels:        []UserLabel{},
		Wallet:        Balances{Free: r.Free.Int64, Standard: r.Standard.Int64, UpdatedAt: r.WalletUpdatedAt.Time},
		StreamVersion: uint64(r.StreamVersion),
	}
	for _, r := range rows {
		if r.LabelKey.Valid {
			p.Labels = append(p.Labels, UserLabel{
				UID: r.UID, Key: r.LabelKey.String, Value: r.LabelValue.String, Scope: r.Scope.String,
				Description: r.Description.String, CreatedAt: r.LabelCreatedAt.Time, UpdatedAt: r.LabelUpdatedAt.Time,
			})
		}
	}
	return p, nil
}

// prepared returns the statement, preparing it on first use; a failure is tried again next time.
func (v *ProfileView) prepared(ctx context.Context) (*sqlx.Stmt, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.stmt == nil {
		stmt, err := v.db.PreparexContext(ctx, v.q)
		if err != nil {
			return nil, fmt.Errorf("projections: prepare the profile query: %w", err)
		}
		v.stmt = stmt
	}
	return v.stmt, nil
}
