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

// UserPhone is one of a user's phones (Barong's Phone). Number is personal data.
type UserPhone struct {
	Number, Country string
	CreatedAt       time.Time
	ValidatedAt     time.Time // zero until verified
}

// UserDocument is one of a user's documents (Barong's Document), without its file, which is in
// the blob store under SHA256. DocNumber and Metadata are personal data.
type UserDocument struct {
	ID, UID                       string
	DocType, DocNumber, DocExpire string
	Metadata                      json.RawMessage
	ContentType, SHA256           string
	Size                          int64
	State, Reason                 string
	CreatedAt, UpdatedAt          time.Time
}

// DataRecord is one of a user's data storage records (Barong's DataStorage).
type DataRecord struct {
	Title     string
	Data      json.RawMessage
	CreatedAt time.Time
}

// KYCView is the KYC read model: each user's phones, documents and data storage records, with
// its projector (a Projector for the Runtime) and queries. A closed account's rows leave with it.
// It is safe for concurrent use.
type KYCView struct {
	db  *sqlx.DB
	d   dialect
	reg *domain.Registry
}

// NewKYCView returns the view over db, which holds the read models. A nil db or an unknown
// dialect is a wiring mistake and panics.
func NewKYCView(db *sqlx.DB, d migrations.Dialect) *KYCView {
	if db == nil {
		panic("projections: NewKYCView with a nil db")
	}
	if err := checkDialect(d); err != nil {
		panic(err.Error())
	}
	return &KYCView{db: db, d: dialect(d), reg: domain.NewEventRegistry()}
}

// KYCProjector is the KYC view's name in checkpoints, status and the command line.
const KYCProjector = "kyc"

const kycLive = `(SELECT live FROM projection_generations WHERE name = 'kyc')`

type phoneRow struct {
	Number      string  `db:"number"`
	Country     string  `db:"country"`
	CreatedAt   sqlTime `db:"created_at"`
	ValidatedAt sqlTime `db:"validated_at"`
}

// Phones lists the user's phones, oldest first.
func (v *KYCView) Phones(ctx context.Context, uid string) ([]UserPhone, error) {
	var rows []phoneRow
	q := v.d.rebind(`SELECT number, country, created_at, validated_at FROM user_phones WHERE generation = ` + kycLive +
		` AND uid = ? ORDER BY created_at, number`)
	if err := v.db.SelectContext(ctx, &rows, q, uid); err != nil {
		return nil, fmt.Errorf("projections: phones of %s: %w", uid, err)
	}
	out := make([]UserPhone, len(rows))
	for i, r := range rows {
		out[i] = UserPhone{Number: r.Number, Country: r.Country, CreatedAt: r.CreatedAt.Time, ValidatedAt: r.ValidatedAt.Time}
	}
	return out, nil
}

const documentColumns = `id, uid, doc_type, doc_number, doc_expire, metadata, content_type, size, sha256, state, reason, created_at, updated_at`

type documentRow struct {
	ID          string         `db:"id"`
	UID         string         `db:"uid"`
	DocType     string         `db:"doc_type"`
	DocNumber   string         `db:"doc_number"`
	DocExpire   string         `db:"doc_expire"`
	Metadata    sql.NullString `db:"metadata"`
	ContentType string         `db:"content_type"`
	Size        int64          `db:"size"`
	SHA256      string         `db:"sha256"`
	State       string         `db:"state"`
	Reason      string         `db:"reason"`
	CreatedAt   sqlTime        `db:"created_at"`
	UpdatedAt   sqlTime        `db:"updated_at"`
}

func (r documentRow) document() UserDocument {
	d := UserDocument{
		ID: r.ID, UID: r.UID, DocType: r.DocType, DocNumber: r.DocNumber, DocExpire: r.DocExpire, ContentType: r.ContentType,
		SHA256: r.SHA256, Size: r.Size, State: r.State, Reason: r.Reason, CreatedAt: r.CreatedAt.Time, UpdatedAt: r.UpdatedAt.Time,
	}
	if r.Metadata.Valid {
		d.Metadata = json.RawMessage(r.Metadata.String)
	}
	return d
}

// Documents lists the user's documents, oldest first.
func (v *KYCView) Documents(ctx context.Context, uid string) ([]UserDocument, error) {
	var rows []documentRow
	q := v.d.rebind(`SELECT ` + documentColumns + ` FROM user_documents WHERE generation = ` + kycLive + ` AND uid = ? ORDER BY created_at, id`)
	if err := v.db.SelectContext(ctx, &rows, q, uid); err != nil {
		return nil, fmt.Errorf("projections: documents of %s: %w", uid, err)
	}
	out := make([]UserDocument, len(rows))
	for i, r := range rows {
		out[i] = r.document()
	}
	return out, nil
}

// Document returns the document of that id, whoever's it is, or ErrNotFound.
func (v *KYCView) Document(ctx context.Context, id string) (UserDocument, error) {
	var r documentRow
	q := v.d.rebind(`SELECT ` + documentColumns + ` FROM user_documents WHERE generation = ` + kycLive + ` AND id = ?`)
	if err := v.db.GetContext(ctx, &r, q, id); errors.Is(err, sql.ErrNoRows) {
		return UserDocument{}, fmt.Errorf("%w: document %q", ErrNotFound, id)
	} else if err != nil {
		return UserDocument{}, fmt.Errorf("projections: document %q: %w", id, err)
	}
	return r.document(), nil
}

// PendingFilter paginates UsersWithPendingDocuments as UserFilter does.
type PendingFilter struct {
	Page, Limit int
}

// UsersWithPendingDocuments returns a page of the users who have documents waiting for review,
// the longest waiting first, and how many such users there are.
func (v *KYCView) UsersWithPendingDocuments(ctx context.Context, f PendingFilter) (uids []string, total int, err error) {
	lim, off, err := page(f.Page, f.Limit)
	if err != nil {
		return nil, 0, err
	}
	const where = `generation = ` + kycLive + ` AND state = 'pending'`
	var rows []struct {
		UID   string `db:"uid"`
		Total int    `db:"total"`
	}
	q := v.d.rebind(`SELECT uid, count(*) OVER () AS total FROM user_documents WHERE ` + where +
		` GROUP BY uid ORDER BY min(created_at), uid LIMIT ? OFFSET ?`)
	if err := v.db.SelectContext(ctx, &rows, q, lim, off); err != nil {
		return nil, 0, fmt.Errorf("projections: users with pending documents: %w", err)
	}
	uids = make([]string, len(rows))
	for i, r := range rows {
		uids[i] = r.UID
	}
	if len(rows) > 0 {
		return uids, rows[0].Total, nil
	}
	if err := v.db.GetContext(ctx, &total, `SELECT count(DISTINCT uid) FROM user_documents WHERE `+where); err != nil {
		return nil, 0, fmt.Errorf("projections: count users with pending documents: %w", err)
	}
	return uids, total, nil
}

// DataStorage lists the user's data storage records, oldest first.
func (v *KYCView) DataStorage(ctx context.Context, uid string) ([]DataRecord, error) {
	var rows []struct {
		Title     string  `db:"title"`
		Data      string  `db:"data"`
		CreatedAt sqlTime `db:"created_at"`
	}
	q := v.d.rebind(`SELECT title, data, created_at FROM user_data_storage WHERE generation = ` + kycLive + ` AND uid = ? ORDER BY created_at, title`)
	if err := v.db.SelectContext(ctx, &rows, q, uid); err != nil {
		return nil, fmt.Errorf("projections: data storage of %s: %w", uid, err)
	}
	out := make([]DataRecord, len(rows))
	for i, r := range rows {
		out[i] = DataRecord{Title: r.Title, Data: json.RawMessage(r.Data), CreatedAt: r.CreatedAt.Time}
	}
	return out, nil
}

// Name implements Projector.
func (v *KYCView) Name() string { return KYCProjector }

var kycEvents = []domain.Event{
	domain.PhoneAdded{}, domain.PhoneVerified{}, domain.DocumentUploaded{}, domain.DocumentReviewed{},
	domain.DataStored{}, domain.DataStorageDeleted{}, domain.AccountClosed{},
}

// Interest implements Projector.
func (v *KYCView) Interest() Interest {
	return Interest{StreamPrefix: domain.UserStreamPrefix, Types: eventTypes(kycEvents)}
}

// Tables implements Projector.
func (v *KYCView) Tables() []string {
	return []string{"user_phones", "user_documents", "user_data_storage"}
}

// Apply implements Projector, one statement per event: KYC changes rarely.
func (v *KYCView) Apply(ctx context.Context, tx *Tx, events []eventstore.Event) error {
	for _, e := range events {
		uid, err := domain.UserIDFromStream(e.StreamID)
		if err != nil {
			return FailedAt(e, err)
		}
		de, err := v.reg.Decode(e.Type, e.SchemaVersion, e.Data)
		if err != nil {
			return FailedAt(e, err)
		}
		at, g, u := tx.TimeArg(e.RecordedAt), tx.Generation, string(uid)
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
		case domain.PhoneAdded:
			add(`INSERT INTO user_phones (generation, uid, number, country, created_at) VALUES (?, ?, ?, ?, ?)`, g, u, ev.PhoneNumber, ev.Country, at)
		case domain.PhoneVerified:
			add(`UPDATE user_phones SET validated_at = ? WHERE generation = ? AND uid = ? AND number = ?`, tx.TimeArg(ev.At), g, u, ev.PhoneNumber)
		case domain.DocumentUploaded:
			add(`INSERT INTO user_documents (generation, id, uid, doc_type, doc_number, doc_expire, metadata, content_type, size, sha256,
				state, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				g, ev.DocumentID, u, ev.DocType, ev.DocNumber, ev.DocExpire, nullJSON(ev.Metadata), ev.File.ContentType, ev.File.Size,
				ev.File.SHA256, string(domain.DocumentPending), at, at)
		case domain.DocumentReviewed:
			add(`UPDATE user_documents SET state = ?, reason = ?, updated_at = ? WHERE generation = ? AND id = ? AND uid = ?`,
				string(ev.State), ev.Reason, at, g, ev.DocumentID, u)
		case domain.DataStored:
			add(`INSERT INTO user_data_storage (generation, uid, title, data, created_at) VALUES (?, ?, ?, ?, ?)`, g, u, ev.Title, string(ev.Data), at)
		case domain.DataStorageDeleted:
			add(`DELETE FROM user_data_storage WHERE generation = ? AND uid = ? AND title = ?`, g, u, ev.Title)
		case domain.AccountClosed:
			for _, table := range v.Tables() {
				add(`DELETE FROM `+table+` WHERE generation = ? AND uid = ?`, g, u)
			}
			for _, s := range stmts {
				if _, err := tx.ExecContext(ctx, tx.Rebind(s.q), s.args...); err != nil {
					return FailedAt(e, fmt.Errorf("delete the KYC of a closed account: %w", err))
				}
			}
			continue
		default:
			continue
		}
		for _, s := range stmts {
			res, err := tx.ExecContext(ctx, tx.Rebind(s.q), s.args...)
			if err != nil {
				return FailedAt(e, fmt.Errorf("write KYC: %w", err))
			}
			if n, err := res.RowsAffected(); err != nil {
				return fmt.Errorf("write KYC: %w", err)
			} else if n != 1 {
				return FailedAt(e, fmt.Errorf("%s of user %s changed %d rows, want 1", e.Type, uid, n))
			}
		}
	}
	return nil
}

var _ Projector = (*KYCView)(nil)
