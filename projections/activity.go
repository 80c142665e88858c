package projections

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/migrations"
)

// Activity is one user-visible event. UID is who acted; TargetUID is the user an administrator
// acted on (topic admin), empty otherwise. ID is the event's global position, so it is the same
// after a rebuild, and ordering by it is ordering by commit.
type Activity struct {
	ID                                                       int64
	UID, TargetUID, Topic, Action, Result, UserIP, UserAgent string
	Data                                                     json.RawMessage // nil when none
	CreatedAt                                                time.Time
}

// Activity topics.
const (
	TopicSession  = "session"
	TopicPassword = "password"
	TopicOTP      = "otp"
	TopicAccount  = "account"
	TopicLabel    = "label"
	TopicWallet   = "wallet"
	TopicAdmin    = "admin"
	// TopicAudit is the topic of a request audited by a permission without a topic of its own.
	TopicAudit = "audit"
)

// Topics lists every activity topic. Filters accept these, and "all" or "" for any.
func Topics() []string {
	return []string{TopicSession, TopicPassword, TopicOTP, TopicAccount, TopicLabel, TopicWallet, TopicAdmin}
}

// Activity results.
const (
	ResultSucceed = "succeed"
	ResultFailed  = "failed"
)

// ActivityFilter narrows ActivityView.List. Zero fields do not filter. Email selects the rows of
// the user (the actor) with that email. AdminOnly keeps the rows where an administrator acted on a
// user. From and To bound created_at (From included, To excluded). Topic "all" is any topic.
type ActivityFilter struct {
	UID, Email, TargetUID, Topic, Action string
	AdminOnly                            bool
	From, To                             time.Time
	Page, Limit                          int
}

// ActivityView is the activity read model: its projector (a Projector for the Runtime) and its
// query. It is safe for concurrent use.
type ActivityView struct{ view }

// NewActivityView returns the activity view over db. A nil db or an unknown dialect is a wiring
// mistake and panics.
func NewActivityView(db *sqlx.DB, d migrations.Dialect) *ActivityView {
	return &ActivityView{newView("NewActivityView", db, d)}
}

// ActivityProjector is the activity view's name in checkpoints, status and the command line.
const ActivityProjector = "activity"

const activityColumns = `id, uid, target_uid, topic, action, result, user_ip, user_agent, data, created_at`

type activityRow struct {
	ID        int64          `db:"id"`
	UID       string         `db:"uid"`
	TargetUID sql.NullString `db:"target_uid"`
	Topic     string         `db:"topic"`
	Action    string         `db:"action"`
	Result    string         `db:"result"`
	UserIP    string         `db:"user_ip"`
	UserAgent string         `db:"user_agent"`
	Data      sql.NullString `db:"data"`
	CreatedAt sqlTime        `db:"created_at"`
	Total     int            `db:"total"`
}

// maxActionLength bounds the action filter; actions are short snake_case words.
const maxActionLength = 64

// List returns a page of the activity matching f, newest first, and how many rows match in all.
// A bad filter returns an error matching ErrInvalidFilter.
func (v *ActivityView) List(ctx context.Context, f ActivityFilter) ([]Activity, int, error) {
	lim, off, err := page(f.Page, f.Limit)
	if err != nil {
		return nil, 0, err
	}
	if err := timeRange(f.From, f.To); err != nil {
		return nil, 0, err
	}
	w := where{sql: `generation = (SELECT live FROM projection_generations WHERE name = 'activity')`}
	for _, id := range []struct{ field, value, column string }{{"uid", f.UID, "uid"}, {"target_uid", f.TargetUID, "target_uid"}} {
		if id.value == "" {
			continue
		}
		if _, err := domain.ParseUserID(id.value); err != nil {
			return nil, 0, &FilterError{Field: id.field, Reason: fmt.Sprintf("(%q) is not a user id", id.value)}
		}
		w.add(id.column+" = ?", id.value)
	}
	switch {
	case f.Topic == "" || f.Topic == "all":
	case slices.Contains(Topics(), f.Topic):
		w.add("topic = ?", f.Topic)
	default:
		return nil, 0, &FilterError{Field: "topic", Reason: fmt.Sprintf("(%q) must be all or one of %s", f.Topic, strings.Join(Topics(), ", "))}
	}
	if f.Action != "" {
		if len(f.Action) > maxActionLength {
			return nil, 0, &FilterError{Field: "action", Reason: fmt.Sprintf("is longer than %d characters", maxActionLength)}
		}
		w.add("action = ?", f.Action)
	}
	if f.AdminOnly {
		w.add("target_uid IS NOT NULL")
	}
	if f.Email != "" {
		w.add(`uid IN (SELECT uid FROM users WHERE generation = `+usersLive+` AND email = ?)`, strings.ToLower(strings.TrimSpace(f.Email)))
	}
	if !f.From.IsZero() {
		w.add("created_at >= ?", v.d.time(f.From))
	}
	if !f.To.IsZero() {
		w.add("created_at < ?", v.d.time(f.To))
	}
	var rows []activityRow
	q := v.d.rebind(`SELECT ` + activityColumns + `, count(*) OVER () AS total FROM activity WHERE ` + w.sql +
		` ORDER BY id DESC LIMIT ? OFFSET ?`)
	if err := v.db.SelectContext(ctx, &rows, q, append(w.args, lim, off)...); err != nil {
		return nil, 0, fmt.Errorf("projections: list activity: %w", err)
	}
	out := make([]Activity, len(rows))
	for i, r := range rows {
		out[i] = Activity{
			ID: r.ID, UID: r.UID, TargetUID: r.TargetUID.String, Topic: r.Topic, Action: r.Action, Result: r.Result,
			UserIP: r.UserIP, UserAgent: r.UserAgent, CreatedAt: r.CreatedAt.Time,
		}
		if r.Data.Valid {
			out[i].Data = json.RawMessage(r.Data.String)
		}
	}
	if len(rows) > 0 {
		return out, rows[0].Total, nil
	}
	var total int
	if err := v.db.GetContext(ctx, &total, v.d.rebind(`SELECT count(*) FROM activity WHERE `+w.sql), w.args...); err != nil {
		return nil, 0, fmt.Errorf("projections: count activity: %w", err)
	}
	return out, total, nil
}

// Name implements Projector.
func (v *ActivityView) Name() string { return ActivityProjector }

// activityEvents are the user events that make an activity row.
var activityEvents = []domain.Event{
	domain.UserRegistered{}, domain.EmailVerificationRequested{}, domain.EmailVerified{},
	domain.PasswordChanged{}, domain.PasswordResetRequested{}, domain.PasswordReset{},
	domain.EmailChanged{}, domain.UsernameChanged{}, domain.UserDataUpdated{},
	domain.SessionStarted{}, domain.LoginFailed{}, domain.SessionEnded{}, domain.SessionRefreshed{},
	domain.OTPSecretGenerated{}, domain.OTPEnabled{}, domain.OTPVerified{}, domain.OTPDisabled{},
	domain.UserStateChanged{}, domain.RoleChanged{}, domain.UserDeleted{},
	domain.LabelAdded{}, domain.LabelUpdated{}, domain.LabelRemoved{}, domain.LevelChanged{},
	domain.WalletCredited{}, domain.WalletDebited{},
	domain.LoginDisabled{}, domain.LoginEnabled{}, domain.AccountClosed{}, domain.SecretCheckFailed{},
	domain.ProfileCreated{}, domain.ProfileUpdated{}, domain.ProfileStateChanged{}, domain.UserSettingsChanged{},
	domain.PhoneAdded{}, domain.PhoneCodeSent{}, domain.PhoneVerified{}, domain.DocumentUploaded{}, domain.DocumentReviewed{},
	domain.DataStored{}, domain.DataStorageDeleted{},
	domain.UserErased{},
	domain.RequestAudited{}, domain.APIKeyCreated{}, domain.APIKeyChanged{}, domain.APIKeyDeleted{},
}

// Interest implements Projector. An event type this build does not know stops the projector
// rather than leaving a hole in the activity log.
func (v *ActivityView) Interest() Interest {
	return Interest{StreamPrefix: domain.UserStreamPrefix, Types: eventTypes(activityEvents)}
}

// Tables implements Projector.
func (v *ActivityView) Tables() []string { return []string{"activity"} }

// Apply implements Projector: one multi-row insert per batch. The primary key (generation, id)
// would refuse an event applied twice.
func (v *ActivityView) Apply(ctx context.Context, tx *Tx, events []eventstore.Event) error {
	rows := make([]activityRow, 0, len(events))
	var erased []string
	for _, e := range events {
		owner, err := domain.UserIDFromStream(e.StreamID)
		if err != nil {
			return FailedAt(e, err)
		}
		de, err := tx.decode(v.reg, e)
		if err != nil {
			return FailedAt(e, err)
		}
		if _, ok := de.(domain.UserErased); ok {
			erased = append(erased, string(owner))
		}
		row, ok, err := activityOf(e, de, string(owner))
		if err != nil {
			return FailedAt(e, err)
		}
		if ok {
			rows = append(rows, row)
		}
	}
	if err := v.insert(ctx, tx, rows); err != nil {
		return err
	}
	return v.scrub(ctx, tx, erased)
}

// scrub forgets the personal data that the activity rows of erased users hold: the addresses and
// browsers they acted from, and the data of every row about them (emails, names, label values,
// reasons). The rows themselves stay: what happened, and when, is not personal data of theirs.
func (v *ActivityView) scrub(ctx context.Context, tx *Tx, uids []string) error {
	for _, uid := range uids {
		if _, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE `+tx.Table("activity")+` SET user_ip = ?, user_agent = ?
			WHERE generation = ? AND uid = ? AND target_uid IS NULL`), domain.Erased, domain.Erased, tx.Generation, uid); err != nil {
			return fmt.Errorf("scrub the activity of %s: %w", uid, err)
		}
		if _, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE `+tx.Table("activity")+` SET data = NULL
			WHERE generation = ? AND (uid = ? OR target_uid = ?)`), tx.Generation, uid, uid); err != nil {
			return fmt.Errorf("scrub the activity of %s: %w", uid, err)
		}
	}
	return nil
}

// insert writes the rows of a batch.
func (v *ActivityView) insert(ctx context.Context, tx *Tx, rows []activityRow) error {
	if len(rows) == 0 {
		return nil
	}
	if tx.Dialect() == migrations.Postgres && !tx.Bulk {
		// One array per column, as in UsersView.upsert.
		n := len(rows)
		id, created := make([]int64, n), make([]int64, n)
		uid, target, topic, action, result, ip, agent, data := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		for i, a := range rows {
			id[i], created[i] = a.ID, a.CreatedAt.UnixMicro()
			uid[i], target[i], topic[i], action[i], result[i], ip[i], agent[i], data[i] = a.UID, a.TargetUID.String, a.Topic, a.Action, a.Result, a.UserIP, a.UserAgent, a.Data.String
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO activity (generation, `+activityColumns+`)
			SELECT $1, x.id, x.uid, NULLIF(x.target, ''), x.topic, x.action, x.result, x.ip, x.agent, NULLIF(x.data, ''),
				timestamptz 'epoch' + x.created * interval '1 microsecond'
			FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::bigint[])
				AS x(id, uid, target, topic, action, result, ip, agent, data, created)`,
			tx.Generation, pq.Array(id), pq.Array(uid), pq.Array(target), pq.Array(topic), pq.Array(action), pq.Array(result),
			pq.Array(ip), pq.Array(agent), pq.Array(data), pq.Array(created))
		if err != nil {
			return fmt.Errorf("write activity: %w", err)
		}
		return nil
	}
	// A rebuild's batch on PostgreSQL: COPY. On SQLite: prepared multi-row inserts.
	values := make([][]any, len(rows))
	for i, a := range rows {
		values[i] = []any{tx.Generation, a.ID, a.UID, nullString(a.TargetUID), a.Topic, a.Action, a.Result,
			a.UserIP, a.UserAgent, nullString(a.Data), a.CreatedAt.Time}
	}
	if err := tx.CopyIn(ctx, "activity", activityCopyColumns, values); err != nil {
		return fmt.Errorf("write activity: %w", err)
	}
	return nil
}

var activityCopyColumns = []string{"generation", "id", "uid", "target_uid", "topic", "action", "result", "user_ip", "user_agent", "data", "created_at"}

// nullString is s's value, or nil for NULL.
func nullString(s sql.NullString) any {
	if !s.Valid {
		return nil
	}
	return s.String
}

// The data of some activity rows. Never a secret: no hash, token or OTP ciphertext.
type (
	fromTo struct {
		From string `json:"from,omitempty"`
		To   string `json:"to"`
	}
	stateData struct {
		From   string `json:"from"`
		To     string `json:"to"`
		Reason string `json:"reason,omitempty"`
	}
	reasonData struct {
		Reason string `json:"reason"`
	}
	loginData struct {
		OTP bool `json:"otp"`
	}
	labelData struct {
		Key   string `json:"key"`
		Value string `json:"value,omitempty"`
		Scope string `json:"scope"`
	}
	levelData struct {
		From int `json:"from"`
		To   int `json:"to"`
	}
	walletData struct {
		Balance   string `json:"balance"`
		Amount    int64  `json:"amount"`
		Reason    string `json:"reason"`
		Reference string `json:"reference,omitempty"`
	}
)

// activityOf maps an event of owner's stream to its activity row, if it makes one. An event that
// someone else than the owner caused (an administrator, per the envelope's actor) is an admin
// row: uid is the actor, target_uid the owner.
func activityOf(e eventstore.Event, de domain.Event, owner string) (activityRow, bool, error) {
	result := ResultSucceed
	var topic, action string
	var data any
	switch ev := de.(type) {
	case domain.UserRegistered:
		topic, action = TopicAccount, "signup"
	case domain.EmailVerificationRequested:
		topic, action = TopicAccount, "request_email_verification"
	case domain.EmailVerified:
		topic, action = TopicAccount, "verify_email"
	case domain.EmailChanged:
		topic, action, data = TopicAccount, "change_email", fromTo{From: ev.From, To: ev.To}
	case domain.UsernameChanged:
		topic, action, data = TopicAccount, "change_username", fromTo{From: ev.From, To: ev.To}
	case domain.UserDataUpdated:
		topic, action = TopicAccount, "update_data"
	// Profile rows name no field's value: the activity log outlives an erasure of personal data.
	case domain.ProfileCreated:
		topic, action, data = TopicAccount, "create_profile", stateData{To: string(ev.State)}
	case domain.ProfileUpdated:
		topic, action = TopicAccount, "update_profile"
	case domain.ProfileStateChanged:
		topic, action, data = TopicAccount, "change_profile_state", stateData{From: string(ev.From), To: string(ev.To)}
	case domain.UserSettingsChanged:
		topic, action = TopicAccount, "change_settings"
	// Nor do the KYC rows: no phone number, no document number, no stored data.
	case domain.PhoneAdded:
		topic, action = TopicAccount, "add_phone"
	case domain.PhoneCodeSent:
		topic, action = TopicAccount, "send_phone_code"
	case domain.PhoneVerified:
		topic, action = TopicAccount, "verify_phone"
	case domain.DocumentUploaded:
		topic, action = TopicAccount, "upload_document"
	case domain.DocumentReviewed:
		topic, action, data = TopicAccount, "review_document", stateData{To: string(ev.State)}
	case domain.DataStored:
		topic, action = TopicAccount, "store_data"
	case domain.DataStorageDeleted:
		topic, action = TopicAccount, "delete_data_storage"
	case domain.UserStateChanged:
		topic, action, data = TopicAccount, "change_state", stateData{From: ev.From.String(), To: ev.To.String(), Reason: ev.Reason}
	case domain.RoleChanged:
		topic, action, data = TopicAccount, "change_role", stateData{From: ev.From.String(), To: ev.To.String()}
	case domain.UserDeleted:
		topic, action = TopicAccount, "delete"
	case domain.LoginDisabled:
		topic, action = TopicAccount, "disable_login"
	case domain.LoginEnabled:
		topic, action = TopicAccount, "enable_login"
	case domain.AccountClosed:
		topic, action = TopicAccount, "close"
	case domain.UserErased:
		topic, action = TopicAccount, "erase_personal_data"
	case domain.PasswordChanged:
		topic, action = TopicPassword, "change"
	case domain.PasswordResetRequested:
		topic, action = TopicPassword, "request_reset"
	case domain.PasswordReset:
		topic, action = TopicPassword, "reset"
	case domain.SessionStarted:
		topic, action, data = TopicSession, "login", loginData{OTP: ev.OTPStep != 0}
	case domain.LoginFailed:
		topic, action, result, data = TopicSession, "login", ResultFailed, reasonData{Reason: string(ev.Reason)}
	case domain.SecretCheckFailed:
		// A wrong password or code given to confirm an action: the row of that action, failed.
		topic, action, result, data = TopicPassword, "check", ResultFailed, reasonData{Reason: ev.Action}
		switch ev.Secret {
		case domain.SecretOTP:
			topic = TopicOTP
		case domain.SecretPhoneCode:
			topic = TopicAccount
		}
	case domain.SessionEnded:
		topic, action, data = TopicSession, "end_session", reasonData{Reason: string(ev.Reason)}
		if ev.Reason == domain.SessionEndLogout {
			action, data = "logout", nil
		}
	case domain.SessionRefreshed:
		topic, action = TopicSession, "refresh"
	case domain.OTPSecretGenerated:
		topic, action = TopicOTP, "generate_secret"
	case domain.OTPEnabled:
		topic, action = TopicOTP, "enable"
	case domain.OTPVerified:
		topic, action = TopicOTP, "verify"
	case domain.OTPDisabled:
		topic, action = TopicOTP, "disable"
	case domain.LabelAdded:
		topic, action, data = TopicLabel, "add", labelData{Key: ev.Key, Value: ev.Value, Scope: ev.Scope.String()}
	case domain.LabelUpdated:
		topic, action, data = TopicLabel, "update", labelData{Key: ev.Key, Value: ev.Value, Scope: ev.Scope.String()}
	case domain.LabelRemoved:
		topic, action, data = TopicLabel, "remove", labelData{Key: ev.Key, Scope: ev.Scope.String()}
	case domain.LevelChanged:
		topic, action, data = TopicAccount, "change_level", levelData{From: ev.From, To: ev.To}
	case domain.WalletCredited:
		topic, action, data = TopicWallet, "credit", walletData{Balance: ev.Balance.String(), Amount: ev.Amount, Reason: ev.Reason, Reference: ev.Reference}
	case domain.WalletDebited:
		topic, action, data = TopicWallet, "debit", walletData{Balance: ev.Balance.String(), Amount: ev.Amount, Reason: ev.Reason, Reference: ev.Reference}
	case domain.APIKeyCreated:
		topic, action, data = TopicAccount, "create_api_key", apiKeyData{KID: ev.KID}
	case domain.APIKeyChanged:
		topic, action, data = TopicAccount, "change_api_key", apiKeyData{KID: ev.KID, State: string(ev.State)}
	case domain.APIKeyDeleted:
		topic, action, data = TopicAccount, "delete_api_key", apiKeyData{KID: ev.KID}
	case domain.RequestAudited:
		// Barong's audit: the permission's topic (TopicAudit when it has none).
		topic, action, data = ev.Topic, "request", auditData{Method: ev.Method, Path: ev.Path}
		if topic == "" {
			topic = TopicAudit
		}
	default:
		return activityRow{}, false, nil
	}
	row := activityRow{
		ID: int64(e.GlobalPosition), UID: owner, Topic: topic, Action: action, Result: result,
		UserIP: e.Metadata.IP, UserAgent: e.Metadata.UserAgent, CreatedAt: sqlTime{e.RecordedAt},
	}
	if actor := e.Metadata.ActorUID; actor != "" && actor != eventstore.ActorSystem && actor != owner {
		row.UID, row.TargetUID, row.Topic = actor, sql.NullString{String: owner, Valid: true}, TopicAdmin
	}
	if data != nil {
		b, err := json.Marshal(data)
		if err != nil {
			return activityRow{}, false, err
		}
		row.Data = sql.NullString{String: string(b), Valid: true}
	}
	return row, true, nil
}

// apiKeyData is the data of an API key's rows: never its secret.
type apiKeyData struct {
	KID   string `json:"kid"`
	State string `json:"state,omitempty"`
}

// auditData is the data of an audited request's row.
type auditData struct {
	Method string `json:"method"`
	Path   string `json:"path"`
}

var _ Projector = (*ActivityView)(nil)
