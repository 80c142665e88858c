package projections

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/migrations"
)

// UserProfile is a user's profile (Barong's Profile, with company, VAT id and locale) as the
// profiles read model shows it. All of it is personal data.
type UserProfile struct {
	UID   string
	State string // drafted, submitted, verified or rejected
	domain.ProfileData
	CreatedAt, UpdatedAt time.Time
}

// ProfileFilter paginates UserProfilesView.List as UserFilter does.
type ProfileFilter struct {
	Page, Limit int
}

// UserProfilesView is the profiles read model: its projector (a Projector for the Runtime) and its
// queries. It holds each user's profile and settings; a closed account's row leaves with it. The
// erasure of personal data (sealing the events' data) is to come; until then this table and the
// events are where profiles live. It is safe for concurrent use.
type UserProfilesView struct{ view }

// NewUserProfilesView returns the view over db, which holds the read models. A nil db or an unknown
// dialect is a wiring mistake and panics.
func NewUserProfilesView(db *sqlx.DB, d migrations.Dialect) *UserProfilesView {
	return &UserProfilesView{newView("NewUserProfilesView", db, d)}
}

// ProfilesProjector is the profiles view's name in checkpoints, status and the command line.
const ProfilesProjector = "profiles"

const profilesLive = `(SELECT live FROM projection_generations WHERE name = 'profiles')`

const profileFields = `first_name, last_name, dob, address, postcode, city, country, company, vat_id, locale, metadata`

const profileColumns = `uid, state, ` + profileFields + `, created_at, updated_at`

type userProfileRow struct {
	UID       string         `db:"uid"`
	State     string         `db:"state"`
	FirstName string         `db:"first_name"`
	LastName  string         `db:"last_name"`
	DOB       string         `db:"dob"`
	Address   string         `db:"address"`
	Postcode  string         `db:"postcode"`
	City      string         `db:"city"`
	Country   string         `db:"country"`
	Company   string         `db:"company"`
	VATID     string         `db:"vat_id"`
	Locale    string         `db:"locale"`
	Metadata  sql.NullString `db:"metadata"`
	CreatedAt sqlTime        `db:"created_at"`
	UpdatedAt sqlTime        `db:"updated_at"`
	Total     int            `db:"total"`
}

func (r userProfileRow) profile() UserProfile {
	p := UserProfile{UID: r.UID, State: r.State, CreatedAt: r.CreatedAt.Time, UpdatedAt: r.UpdatedAt.Time}
	p.ProfileData = domain.ProfileData{
		FirstName: r.FirstName, LastName: r.LastName, DOB: r.DOB, Address: r.Address, Postcode: r.Postcode,
		City: r.City, Country: r.Country, Company: r.Company, VATID: r.VATID, Locale: r.Locale,
	}
	if r.Metadata.Valid {
		p.Metadata = json.RawMessage(r.Metadata.String)
	}
	return p
}

// ByUID returns the user's profile, or ErrNotFound when they have none.
func (v *UserProfilesView) ByUID(ctx context.Context, uid string) (UserProfile, error) {
	var r userProfileRow
	q := v.d.rebind(`SELECT ` + profileColumns + ` FROM user_profiles WHERE generation = ` + profilesLive + ` AND uid = ? AND state <> ''`)
	if err := v.db.GetContext(ctx, &r, q, uid); errors.Is(err, sql.ErrNoRows) {
		return UserProfile{}, fmt.Errorf("%w: profile of %s", ErrNotFound, uid)
	} else if err != nil {
		return UserProfile{}, fmt.Errorf("projections: profile of %s: %w", uid, err)
	}
	return r.profile(), nil
}

// Settings returns the user's settings object, nil when they have none.
func (v *UserProfilesView) Settings(ctx context.Context, uid string) (json.RawMessage, error) {
	var s sql.NullString
	q := v.d.rebind(`SELECT settings FROM user_profiles WHERE generation = ` + profilesLive + ` AND uid = ?`)
	if err := v.db.GetContext(ctx, &s, q, uid); errors.Is(err, sql.ErrNoRows) || err == nil && !s.Valid {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("projections: settings of %s: %w", uid, err)
	}
	return json.RawMessage(s.String), nil
}

// List returns a page of the profiles, newest first, and how many there are in all.
func (v *UserProfilesView) List(ctx context.Context, f ProfileFilter) (profiles []UserProfile, total int, err error) {
	lim, off, err := page(f.Page, f.Limit)
	if err != nil {
		return nil, 0, err
	}
	const where = `generation = ` + profilesLive + ` AND state <> ''`
	var rows []userProfileRow
	q := v.d.rebind(`SELECT ` + profileColumns + `, count(*) OVER () AS total FROM user_profiles WHERE ` + where +
		` ORDER BY created_at DESC, uid DESC LIMIT ? OFFSET ?`)
	if err := v.db.SelectContext(ctx, &rows, q, lim, off); err != nil {
		return nil, 0, fmt.Errorf("projections: list profiles: %w", err)
	}
	profiles = make([]UserProfile, len(rows))
	for i, r := range rows {
		profiles[i] = r.profile()
	}
	if len(rows) > 0 {
		return profiles, rows[0].Total, nil
	}
	if err := v.db.GetContext(ctx, &total, `SELECT count(*) FROM user_profiles WHERE `+where); err != nil {
		return nil, 0, fmt.Errorf("projections: count profiles: %w", err)
	}
	return profiles, total, nil
}

// Name implements Projector.
func (v *UserProfilesView) Name() string { return ProfilesProjector }

var profileEvents = []domain.Event{
	domain.ProfileCreated{}, domain.ProfileUpdated{}, domain.ProfileStateChanged{}, domain.UserSettingsChanged{},
	domain.AccountClosed{},
}

// Interest implements Projector.
func (v *UserProfilesView) Interest() Interest {
	return Interest{StreamPrefix: domain.UserStreamPrefix, Types: eventTypes(profileEvents)}
}

// Tables implements Projector.
func (v *UserProfilesView) Tables() []string { return []string{"user_profiles"} }

func nullJSON(m json.RawMessage) any {
	if m == nil {
		return nil
	}
	return string(m)
}

// Apply implements Projector, one statement per event: profiles change rarely.
func (v *UserProfilesView) Apply(ctx context.Context, tx *Tx, events []eventstore.Event) error {
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
		fields := func(d domain.ProfileData) []any {
			return []any{d.FirstName, d.LastName, d.DOB, d.Address, d.Postcode, d.City, d.Country, d.Company, d.VATID, d.Locale, nullJSON(d.Metadata)}
		}
		var q string
		var args []any
		switch ev := de.(type) {
		case domain.ProfileCreated:
			// A new profile replaces a rejected one whole; the settings stay.
			q = `INSERT INTO user_profiles (generation, uid, state, ` + profileFields + `, created_at, updated_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
				ON CONFLICT (generation, uid) DO UPDATE SET state = excluded.state, first_name = excluded.first_name,
				last_name = excluded.last_name, dob = excluded.dob, address = excluded.address, postcode = excluded.postcode,
				city = excluded.city, country = excluded.country, company = excluded.company, vat_id = excluded.vat_id,
				locale = excluded.locale, metadata = excluded.metadata, created_at = excluded.created_at, updated_at = excluded.updated_at`
			args = append(append([]any{tx.Generation, string(uid), string(ev.State)}, fields(ev.ProfileData)...), at, at)
		case domain.ProfileUpdated:
			q = `UPDATE user_profiles SET first_name = ?, last_name = ?, dob = ?, address = ?, postcode = ?, city = ?,
				country = ?, company = ?, vat_id = ?, locale = ?, metadata = ?, updated_at = ? WHERE generation = ? AND uid = ?`
			args = append(fields(ev.ProfileData), at, tx.Generation, string(uid))
		case domain.ProfileStateChanged:
			q = `UPDATE user_profiles SET state = ?, updated_at = ? WHERE generation = ? AND uid = ?`
			args = []any{string(ev.To), at, tx.Generation, string(uid)}
		case domain.UserSettingsChanged:
			q = `INSERT INTO user_profiles (generation, uid, settings, created_at, updated_at) VALUES (?, ?, ?, ?, ?)
				ON CONFLICT (generation, uid) DO UPDATE SET settings = excluded.settings`
			args = []any{tx.Generation, string(uid), nullJSON(ev.Settings), at, at}
		case domain.AccountClosed:
			q = `DELETE FROM user_profiles WHERE generation = ? AND uid = ?`
			if _, err := tx.ExecContext(ctx, tx.Rebind(q), tx.Generation, string(uid)); err != nil {
				return FailedAt(e, fmt.Errorf("delete the profile of a closed account: %w", err))
			}
			continue
		default:
			continue
		}
		res, err := tx.ExecContext(ctx, tx.Rebind(q), args...)
		if err != nil {
			return FailedAt(e, fmt.Errorf("write profile: %w", err))
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("write profile: %w", err)
		} else if n != 1 {
			return FailedAt(e, fmt.Errorf("%s of user %s changed %d rows, want 1", e.Type, uid, n))
		}
	}
	return nil
}

var _ Projector = (*UserProfilesView)(nil)
