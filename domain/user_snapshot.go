package domain

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// A User can be copied, continued and saved whole, so that the command layer need not fold a
// user's entire history on every request: it keeps a rebuilt user at a version and applies only
// the events stored after it, and it may store snapshots beside the log. The log stays the only
// source of truth: a snapshot is a cache, rebuilt from events whenever it is missing, stale or
// unreadable.

// UserSnapshotSchema is the shape of the state Snapshot writes. Change it whenever the state of
// User changes (a field added, one meaning something else): RestoreUser then refuses older
// snapshots (ErrSnapshotSchema) and users are rebuilt from their events. A test pins the fields of
// User to remind whoever changes them.
const UserSnapshotSchema = 5

// ErrSnapshotSchema: a snapshot was written for another shape of User, or is not a snapshot at all.
// It is not a user's mistake: the caller rebuilds the user from its events.
var ErrSnapshotSchema = errors.New("domain: snapshot of another schema or unreadable")

// Clone returns a copy of the user that shares nothing it could change: commands on one never
// show on the other.
func (u *User) Clone() *User {
	c := *u
	c.sessions = maps.Clone(u.sessions)
	c.expiries = slices.Clone(u.expiries)
	c.labels = maps.Clone(u.labels)
	c.phones = slices.Clone(u.phones)
	c.documents = slices.Clone(u.documents)
	c.dataStorage = maps.Clone(u.dataStorage)
	c.apiKeys = maps.Clone(u.apiKeys) // values are replaced by events, never changed in place
	// The byte slices and pending tokens are replaced by events, never changed in place.
	return &c
}

// Advance applies events stored after the user's version, oldest first, as RehydrateUser would
// have, and moves Version past them. UserRegistered among them is ErrNotRegistered, and the user is
// then left unchanged.
func (u *User) Advance(tail []Event) error {
	for i, e := range tail {
		if _, again := e.(UserRegistered); again {
			return fmt.Errorf("%w: UserRegistered again at version %d", ErrNotRegistered, u.version+uint64(i)+1)
		}
	}
	for _, e := range tail {
		u.apply(e)
	}
	u.version += uint64(len(tail))
	return nil
}

// userSnapshot is the whole state of a User, as Snapshot encodes it. Configuration (the level
// ladder, the session limit) is not state and is not in it.
type userSnapshot struct {
	Schema          int               `json:"schema"`
	ID              UserID            `json:"uid"`
	Email           string            `json:"email"`
	EmailVerified   bool              `json:"email_verified,omitempty"`
	Username        string            `json:"username,omitempty"`
	PasswordHash    string            `json:"password_hash"`
	Role            Role              `json:"role"`
	State           State             `json:"state"`
	LoginDisabled   bool              `json:"login_disabled,omitempty"`
	Closed          bool              `json:"closed,omitempty"`
	Erased          bool              `json:"erased,omitempty"`
	RefID           UserID            `json:"refid,omitempty"`
	Data            []byte            `json:"data,omitempty"` // the exact bytes, not re-encoded JSON
	EmailToken      *snapshotToken    `json:"email_token,omitempty"`
	ResetToken      *snapshotToken    `json:"reset_token,omitempty"`
	OTPSecret       []byte            `json:"otp_secret,omitempty"`
	OTPEnabled      bool              `json:"otp_enabled,omitempty"`
	LastOTPStep     int64             `json:"last_otp_step,omitempty"`
	Sessions        []snapshotSession `json:"sessions,omitempty"`
	FailedLogins    int               `json:"failed_logins,omitempty"`
	LastFailedLogin time.Time         `json:"last_failed_login"`
	Labels          []snapshotLabel   `json:"labels,omitempty"`
	Level           int               `json:"level,omitempty"`
	Free            int64             `json:"free,omitempty"`
	Standard        int64             `json:"standard,omitempty"`
	Profile         *ProfileCreated   `json:"profile,omitempty"`
	Settings        []byte            `json:"settings,omitempty"`
	Phones          []snapshotPhone   `json:"phones,omitempty"`
	Documents       []Document        `json:"documents,omitempty"`
	DataStorage     []DataStored      `json:"data_storage,omitempty"`
	APIKeys         []snapshotAPIKey  `json:"api_keys,omitempty"`
}

type snapshotPhone struct {
	Phone
	Code *snapshotToken `json:"code,omitempty"`
}

type snapshotToken struct {
	Hash      string    `json:"hash"`
	ExpiresAt time.Time `json:"expires_at"`
}

type snapshotSession struct {
	ID        string    `json:"sid"`
	StartedAt time.Time `json:"at"`
	ExpiresAt time.Time `json:"expires_at"`
	EndsAt    time.Time `json:"ends_at,omitzero"`
	Refresh   string    `json:"refresh,omitempty"`
	Rotated   []string  `json:"rotated,omitempty"`
	CSRF      string    `json:"csrf,omitempty"`
}

type snapshotLabel struct {
	Key         string     `json:"key"`
	Scope       LabelScope `json:"scope"`
	Value       string     `json:"value"`
	Description string     `json:"description,omitempty"`
}

// Snapshot encodes the user's whole state (at Version, which the caller keeps beside it) for
// RestoreUser. The same state always gives the same bytes. It holds what the events hold, personal
// data included: it must be erased with them.
func (u *User) Snapshot() ([]byte, error) {
	s := userSnapshot{
		Schema: UserSnapshotSchema, ID: u.id, Email: u.email, EmailVerified: u.emailVerified, Username: u.username,
		PasswordHash: u.passwordHash, Role: u.role, State: u.state, LoginDisabled: u.loginDisabled, Closed: u.closed, Erased: u.erased,
		RefID: u.refID, Data: u.data, EmailToken: tokenSnapshot(u.emailToken), ResetToken: tokenSnapshot(u.resetToken),
		OTPSecret: u.otpSecret, OTPEnabled: u.otpEnabled, LastOTPStep: u.lastOTPStep,
		FailedLogins: u.failedLogins, LastFailedLogin: u.lastFailedLogin,
		Level: u.level, Free: u.wallet.Free, Standard: u.wallet.Standard, Settings: u.settings,
	}
	s.APIKeys = u.apiKeysSnapshot()
	if u.profile != nil {
		s.Profile = &ProfileCreated{ProfileData: u.profile.data, State: u.profile.state}
	}
	for _, p := range u.phones {
		s.Phones = append(s.Phones, snapshotPhone{Phone: p.Phone, Code: tokenSnapshot(p.code)})
	}
	s.Documents = u.documents
	for _, t := range slices.Sorted(maps.Keys(u.dataStorage)) {
		s.DataStorage = append(s.DataStorage, DataStored{Title: t, Data: u.dataStorage[t]})
	}
	for sid, x := range u.sessions {
		s.Sessions = append(s.Sessions, snapshotSession{
			ID: sid, StartedAt: x.started, ExpiresAt: x.expires, EndsAt: x.ends, Refresh: x.refresh, Rotated: x.rotated, CSRF: x.csrf,
		})
	}
	slices.SortFunc(s.Sessions, func(a, b snapshotSession) int { return strings.Compare(a.ID, b.ID) })
	for id, l := range u.labels {
		s.Labels = append(s.Labels, snapshotLabel{Key: id.key, Scope: id.scope, Value: l.value, Description: l.description})
	}
	slices.SortFunc(s.Labels, func(a, b snapshotLabel) int {
		return strings.Compare(a.Key+"\x00"+a.Scope.name, b.Key+"\x00"+b.Scope.name)
	})
	b, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("domain: snapshot of user %s: %w", u.id, err)
	}
	return b, nil
}

func tokenSnapshot(p *pendingToken) *snapshotToken {
	if p == nil {
		return nil
	}
	return &snapshotToken{Hash: p.hash, ExpiresAt: p.expiresAt}
}

// RestoreUser rebuilds a user from Snapshot's bytes, at the stream version the snapshot was taken
// at. Bytes of another UserSnapshotSchema, or that cannot be a user's state, are ErrSnapshotSchema:
// rebuild from the events then. Like RehydrateUser's, the user uses DefaultLevels and
// DefaultSessionLimit until told otherwise.
func RestoreUser(data []byte, version uint64) (*User, error) {
	var s userSnapshot
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSnapshotSchema, err)
	}
	if s.Schema != UserSnapshotSchema {
		return nil, fmt.Errorf("%w: schema %d, this build reads %d", ErrSnapshotSchema, s.Schema, UserSnapshotSchema)
	}
	if _, err := ParseUserID(string(s.ID)); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSnapshotSchema, err)
	}
	if s.Role.IsZero() || s.State.IsZero() || version == 0 {
		return nil, fmt.Errorf("%w: no role, state or version", ErrSnapshotSchema)
	}
	u := &User{
		id: s.ID, email: s.Email, emailVerified: s.EmailVerified, username: s.Username, passwordHash: s.PasswordHash,
		role: s.Role, state: s.State, loginDisabled: s.LoginDisabled, closed: s.Closed, erased: s.Erased, refID: s.RefID, data: json.RawMessage(s.Data),
		emailToken: s.EmailToken.pending(), resetToken: s.ResetToken.pending(),
		otpSecret: s.OTPSecret, otpEnabled: s.OTPEnabled, lastOTPStep: s.LastOTPStep,
		sessions:     make(map[string]session, len(s.Sessions)),
		failedLogins: s.FailedLogins, lastFailedLogin: s.LastFailedLogin,
		level: s.Level, wallet: Wallet{Free: s.Free, Standard: s.Standard},
		settings: json.RawMessage(s.Settings),
		apiKeys:  restoreAPIKeys(s.APIKeys),
		version:  version,
	}
	if s.Profile != nil {
		u.profile = &profile{data: s.Profile.ProfileData, state: s.Profile.State}
	}
	for _, p := range s.Phones {
		u.phones = append(u.phones, phone{Phone: p.Phone, code: p.Code.pending()})
	}
	u.documents = s.Documents
	for _, d := range s.DataStorage {
		if u.dataStorage == nil {
			u.dataStorage = map[string]json.RawMessage{}
		}
		u.dataStorage[d.Title] = d.Data
	}
	for _, x := range s.Sessions {
		u.sessions[x.ID] = session{started: x.StartedAt, expires: x.ExpiresAt, ends: x.EndsAt, refresh: x.Refresh, rotated: x.Rotated, csrf: x.CSRF}
	}
	u.rebuildExpiries()
	for _, l := range s.Labels {
		if u.labels == nil {
			u.labels = map[labelID]labelState{}
		}
		u.labels[labelID{l.Key, l.Scope}] = labelState{value: l.Value, description: l.Description}
	}
	return u, nil
}

func (t *snapshotToken) pending() *pendingToken {
	if t == nil {
		return nil
	}
	return &pendingToken{hash: t.Hash, expiresAt: t.ExpiresAt}
}
