package projections

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/migrations"
)

// APIKey is an API key as the read model shows it (Barong's APIKey without its secret).
type APIKey struct {
	UID, KID, Algorithm, State string
	Scopes                     []string
	CreatedAt, UpdatedAt       time.Time
}

// APIKeysView is the API keys read model: its projector and its queries. A closed account's keys
// leave with it. It is safe for concurrent use.
type APIKeysView struct {
	db  *sqlx.DB
	d   dialect
	reg *domain.Registry
}

// NewAPIKeysView returns the view over db. A nil db or an unknown dialect panics.
func NewAPIKeysView(db *sqlx.DB, d migrations.Dialect) *APIKeysView {
	if db == nil {
		panic("projections: NewAPIKeysView with a nil db")
	}
	if err := checkDialect(d); err != nil {
		panic(err.Error())
	}
	return &APIKeysView{db: db, d: dialect(d), reg: domain.NewEventRegistry()}
}

// APIKeysProjector is the view's name in checkpoints, status and the command line.
const APIKeysProjector = "api_keys"

const apiKeysLive = `(SELECT live FROM projection_generations WHERE name = 'api_keys')`

type apiKeyRow struct {
	UID       string  `db:"uid"`
	KID       string  `db:"kid"`
	Algorithm string  `db:"algorithm"`
	Scopes    string  `db:"scopes"`
	State     string  `db:"state"`
	CreatedAt sqlTime `db:"created_at"`
	UpdatedAt sqlTime `db:"updated_at"`
	Total     int     `db:"total"`
}

// ListByUID returns a page of the user's keys, oldest first, and how many they have.
func (v *APIKeysView) ListByUID(ctx context.Context, uid string, pageNo, limit int) ([]APIKey, int, error) {
	lim, off, err := page(pageNo, limit)
	if err != nil {
		return nil, 0, err
	}
	var rows []apiKeyRow
	q := v.d.rebind(`SELECT uid, kid, algorithm, scopes, state, created_at, updated_at, count(*) OVER () AS total
		FROM api_keys WHERE generation = ` + apiKeysLive + ` AND uid = ? ORDER BY created_at, kid LIMIT ? OFFSET ?`)
	if err := v.db.SelectContext(ctx, &rows, q, uid, lim, off); err != nil {
		return nil, 0, fmt.Errorf("projections: api keys of %s: %w", uid, err)
	}
	out := make([]APIKey, len(rows))
	total := 0
	for i, r := range rows {
		out[i] = APIKey{UID: r.UID, KID: r.KID, Algorithm: r.Algorithm, State: r.State, CreatedAt: r.CreatedAt.Time, UpdatedAt: r.UpdatedAt.Time}
		if err := json.Unmarshal([]byte(r.Scopes), &out[i].Scopes); err != nil {
			return nil, 0, fmt.Errorf("projections: scopes of api key %s: %w", r.KID, err)
		}
		total = r.Total
	}
	if len(rows) == 0 && off > 0 {
		if err := v.db.GetContext(ctx, &total, v.d.rebind(`SELECT count(*) FROM api_keys WHERE generation = `+apiKeysLive+` AND uid = ?`), uid); err != nil {
			return nil, 0, fmt.Errorf("projections: count api keys of %s: %w", uid, err)
		}
	}
	return out, total, nil
}

// Name implements Projector.
func (v *APIKeysView) Name() string { return APIKeysProjector }

// Interest implements Projector.
func (v *APIKeysView) Interest() Interest {
	return Interest{StreamPrefix: domain.UserStreamPrefix, Types: eventTypes([]domain.Event{
		domain.APIKeyCreated{}, domain.APIKeyChanged{}, domain.APIKeyDeleted{}, domain.AccountClosed{},
	})}
}

// Tables implements Projector.
func (v *APIKeysView) Tables() []string { return []string{"api_keys"} }

func scopesJSON(s []string) string {
	if s == nil {
		s = []string{}
	}
	b, _ := json.Marshal(s)
	return string(b)
}

// Apply implements Projector.
func (v *APIKeysView) Apply(ctx context.Context, tx *Tx, events []eventstore.Event) error {
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
		case domain.APIKeyCreated:
			q = `INSERT INTO api_keys (generation, uid, kid, algorithm, scopes, state, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`
			args = []any{tx.Generation, string(uid), ev.KID, ev.Algorithm, scopesJSON(ev.Scopes), string(domain.APIKeyActive), at, at}
		case domain.APIKeyChanged:
			q = `UPDATE api_keys SET scopes = ?, state = ?, updated_at = ? WHERE generation = ? AND uid = ? AND kid = ?`
			args = []any{scopesJSON(ev.Scopes), string(ev.State), at, tx.Generation, string(uid), ev.KID}
		case domain.APIKeyDeleted:
			q = `DELETE FROM api_keys WHERE generation = ? AND uid = ? AND kid = ?`
			args = []any{tx.Generation, string(uid), ev.KID}
		case domain.AccountClosed:
			q = `DELETE FROM api_keys WHERE generation = ? AND uid = ?`
			args = []any{tx.Generation, string(uid)}
		default:
			continue
		}
		if _, err := tx.ExecContext(ctx, tx.Rebind(q), args...); err != nil {
			return FailedAt(e, fmt.Errorf("write api key: %w", err))
		}
	}
	return nil
}

var _ Projector = (*APIKeysView)(nil)
