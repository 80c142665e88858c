package domain

import (
	"encoding/json"
	"time"
)

// The events of a user's stream. Each is a struct value with a stable stored name (EventType,
// never the Go type name) at schema version 1; RegisterEvents lists them all.
//
// What they hold, and what they never hold: passwords only as encoded argon2id hashes, email and
// reset tokens only as SHA-256 hex hashes, the TOTP secret only as ciphertext. Who did it, from which
// address and browser is the envelope's metadata, not event data; only LoginFailed names a reason.
// Times are UTC. Label, level and wallet events live beside their commands (user_labels.go,
// user_wallet.go).

// UserRegistered starts every user's stream.
type UserRegistered struct {
	UserID       UserID          `json:"uid"`
	Email        string          `json:"email" personal:"true"`
	Username     string          `json:"username,omitempty" personal:"true"`
	PasswordHash string          `json:"password_hash"`
	Role         Role            `json:"role"`
	RefID        UserID          `json:"refid,omitempty"`
	Data         json.RawMessage `json:"data,omitempty" personal:"true"`
	// CreatedAt is when the user was created in the system it was imported from (ImportUser);
	// zero for a user registered here, created when the event was recorded.
	CreatedAt time.Time `json:"created_at,omitzero"`
}

// EmailVerificationRequested: a token to confirm Email was sent; it is valid until ExpiresAt and
// replaces any earlier one.
type EmailVerificationRequested struct {
	Email     string    `json:"email" personal:"true"`
	TokenHash string    `json:"token_hash"`
	ExpiresAt time.Time `json:"expires_at"`
}

// EmailVerified: the user proved they own Email.
type EmailVerified struct {
	Email string `json:"email" personal:"true"`
}

// PasswordChanged: the signed-in user set a new password.
type PasswordChanged struct {
	PasswordHash string `json:"password_hash"`
}

// PasswordRehashed: the password did not change, but its hash was made again with the current
// argon2 costs at a sign-in that proved it (hashes made with older, cheaper costs are upgraded).
type PasswordRehashed struct {
	PasswordHash string `json:"password_hash"`
}

// PasswordResetRequested: a reset token was sent; it is valid until ExpiresAt and replaces any
// earlier one.
type PasswordResetRequested struct {
	TokenHash string    `json:"token_hash"`
	ExpiresAt time.Time `json:"expires_at"`
}

// PasswordReset: a forgotten password was replaced using a reset token.
type PasswordReset struct {
	PasswordHash string `json:"password_hash"`
}

// EmailChanged: the user's email is now To and no longer verified.
type EmailChanged struct {
	From string `json:"from" personal:"true"`
	To   string `json:"to" personal:"true"`
}

// UsernameChanged: the user's username is now To (From is empty if they had none).
type UsernameChanged struct {
	From string `json:"from,omitempty" personal:"true"`
	To   string `json:"to" personal:"true"`
}

// UserDataUpdated replaces the user's free JSON data (absent: no data).
type UserDataUpdated struct {
	Data json.RawMessage `json:"data,omitempty" personal:"true"`
}

// SessionStarted: the user signed in. The session is open until SessionEnded or ExpiresAt.
// OTPStep is the TOTP time step of the code given at sign-in, 0 if two-factor authentication is off.
type SessionStarted struct {
	SessionID string    `json:"sid"`
	At        time.Time `json:"at"`
	ExpiresAt time.Time `json:"expires_at"`
	OTPStep   int64     `json:"otp_step,omitempty"`
	// RefreshHash is the SHA-256 (hex) of the session's first refresh token: the session can be
	// renewed (SessionRefreshed) until EndsAt. Sessions started before refresh tokens have none, and
	// ExpiresAt is then their end. EndsAt zero means ExpiresAt.
	RefreshHash string    `json:"refresh_hash,omitempty"`
	EndsAt      time.Time `json:"ends_at,omitzero"`
	// CSRFHash is the SHA-256 (hex) of the CSRF token of a cookie session (Barong's csrf_token),
	// which unsafe requests authenticated by the cookie must carry; empty for a bearer session.
	CSRFHash string `json:"csrf_hash,omitempty"`
}

// SessionRefreshed: the session's refresh token was used, and replaced by the one of RefreshHash
// (rotation). The session is open until ExpiresAt (the idle timeout from At, never past the
// session's EndsAt), unless refreshed again.
type SessionRefreshed struct {
	SessionID   string    `json:"sid"`
	At          time.Time `json:"at"`
	ExpiresAt   time.Time `json:"expires_at"`
	RefreshHash string    `json:"refresh_hash"`
	// CSRFHash, when set, replaces the CSRF token of a cookie session: a browser app renewing its
	// cookies gets a new one (after a reload, say, it no longer has the first).
	CSRFHash string `json:"csrf_hash,omitempty"`
}

// LoginFailure says why a sign-in of a known user failed.
type LoginFailure string

// The reasons of LoginFailed.
const (
	LoginFailureInvalidPassword LoginFailure = "invalid_password"
	LoginFailureMissingOTP      LoginFailure = "missing_otp"
	LoginFailureInvalidOTP      LoginFailure = "invalid_otp"
	LoginFailureReplayedOTP     LoginFailure = "replayed_otp"
	LoginFailureNotActive       LoginFailure = "not_active"
	LoginFailureLoginDisabled   LoginFailure = "login_disabled"
)

func (r LoginFailure) valid() bool {
	switch r {
	case LoginFailureInvalidPassword, LoginFailureMissingOTP, LoginFailureInvalidOTP, LoginFailureReplayedOTP, LoginFailureNotActive,
		LoginFailureLoginDisabled:
		return true
	}
	return false
}

// LoginFailed: a sign-in of this user failed at At.
type LoginFailed struct {
	Reason LoginFailure `json:"reason"`
	At     time.Time    `json:"at"`
}

// SessionEnd says why a session ended.
type SessionEnd string

// The reasons of SessionEnded.
const (
	SessionEndLogout          SessionEnd = "logout"
	SessionEndPasswordChanged SessionEnd = "password_changed"
	SessionEndPasswordReset   SessionEnd = "password_reset"
	SessionEndStateChanged    SessionEnd = "state_changed"
	SessionEndAccountDeleted  SessionEnd = "account_deleted"
	SessionEndLoginDisabled   SessionEnd = "login_disabled"
	SessionEndAccountClosed   SessionEnd = "account_closed"
	// SessionEndSessionLimit: the user signed in with as many sessions open as their limit, and this
	// one, the oldest, made room (User.LimitSessions).
	SessionEndSessionLimit SessionEnd = "session_limit"
	// SessionEndRefreshReuse: a refresh token that had already been rotated was presented again,
	// so two parties hold the session's tokens; the session ends for both (RFC 6819 5.2.2.3).
	SessionEndRefreshReuse SessionEnd = "refresh_token_reused"
	// SessionEndRevoked: the user ended this session from their list of sessions.
	SessionEndRevoked SessionEnd = "revoked"
	// SessionEndRevokedByAdmin: an administrator ended the session.
	SessionEndRevokedByAdmin SessionEnd = "revoked_by_admin"
)

// SessionEnded: the session is closed; an access token bound to it is refused from now on.
// Commands that end every session (password change or reset, ban, lock, deletion) record one
// SessionEnded per open session right after their own event, so a session projection needs to
// follow only this one event.
type SessionEnded struct {
	SessionID string     `json:"sid"`
	Reason    SessionEnd `json:"reason"`
}

// OTPSecretGenerated: a new TOTP secret, encrypted by the caller (auth.Sealer), waits to be enabled.
// It replaces any earlier secret that was not enabled.
type OTPSecretGenerated struct {
	Ciphertext []byte `json:"ciphertext"`
}

// OTPEnabled: the user proved the pending secret with a code of time step Step; two-factor
// authentication is on.
type OTPEnabled struct {
	Step int64 `json:"step"`
}

// OTPVerified: a code of time step Step was accepted outside sign-in (before a sensitive action).
// It is recorded so that the same code cannot be used again.
type OTPVerified struct {
	Step int64 `json:"step"`
}

// OTPDisabled: two-factor authentication is off and the secret is forgotten. The user turned it off
// with a code of time step Step, or an administrator did (the envelope's actor says who) and Step is
// the last step accepted before.
type OTPDisabled struct {
	Step int64 `json:"step"`
}

// UserStateChanged: an administrator moved the account from one state to another.
type UserStateChanged struct {
	From   State  `json:"from"`
	To     State  `json:"to"`
	Reason string `json:"reason,omitempty" personal:"true"`
}

// RoleChanged: an administrator gave the user another role.
type RoleChanged struct {
	From Role `json:"from"`
	To   Role `json:"to"`
}

// UserDeleted: the user deleted their own account; it is in StateDeleted from now on.
type UserDeleted struct{}

// LoginDisabled: an administrator turned the user's sign-in off (Wekan's disableLogin), leaving
// the account's state, role and everything else as they were. Every open session ends with it
// (SessionEnded, reason login_disabled), and sign-in is refused until LoginEnabled.
type LoginDisabled struct{}

// LoginEnabled: an administrator turned the user's sign-in back on.
type LoginEnabled struct{}

// AccountClosed: an administrator deleted the account for good. The email and username it held
// (the ones named here) were released in the same append, for anyone to register again; every open
// session ends with it (reason account_closed). The user is in StateDeleted and no command changes
// them any more; read models forget them, and the history stays.
type AccountClosed struct {
	Email    string `json:"email" personal:"true"`
	Username string `json:"username,omitempty" personal:"true"`
}

// EventType implementations: the stored names. Never change one; add a new event instead.

func (UserRegistered) EventType() string             { return "UserRegistered" }
func (EmailVerificationRequested) EventType() string { return "EmailVerificationRequested" }
func (EmailVerified) EventType() string              { return "EmailVerified" }
func (PasswordChanged) EventType() string            { return "PasswordChanged" }
func (PasswordRehashed) EventType() string           { return "PasswordRehashed" }
func (PasswordResetRequested) EventType() string     { return "PasswordResetRequested" }
func (PasswordReset) EventType() string              { return "PasswordReset" }
func (EmailChanged) EventType() string               { return "EmailChanged" }
func (UsernameChanged) EventType() string            { return "UsernameChanged" }
func (UserDataUpdated) EventType() string            { return "UserDataUpdated" }
func (SessionStarted) EventType() string             { return "SessionStarted" }
func (LoginFailed) EventType() string                { return "LoginFailed" }
func (SessionRefreshed) EventType() string           { return "SessionRefreshed" }
func (SessionEnded) EventType() string               { return "SessionEnded" }
func (OTPSecretGenerated) EventType() string         { return "OTPSecretGenerated" }
func (OTPEnabled) EventType() string                 { return "OTPEnabled" }
func (OTPVerified) EventType() string                { return "OTPVerified" }
func (OTPDisabled) EventType() string                { return "OTPDisabled" }
func (UserStateChanged) EventType() string           { return "UserStateChanged" }
func (RoleChanged) EventType() string                { return "RoleChanged" }
func (UserDeleted) EventType() string                { return "UserDeleted" }
func (LoginDisabled) EventType() string              { return "LoginDisabled" }
func (LoginEnabled) EventType() string               { return "LoginEnabled" }
func (AccountClosed) EventType() string              { return "AccountClosed" }

// RegisterEvents registers every domain event at its current schema version. Later aggregates and
// schema versions (with their upcasters) are added here, so that one call wires them all.
func RegisterEvents(r *Registry) {
	for _, e := range []Event{
		UserRegistered{}, EmailVerificationRequested{}, EmailVerified{}, PasswordChanged{},
		PasswordResetRequested{}, PasswordReset{}, EmailChanged{}, UsernameChanged{},
		UserDataUpdated{}, SessionStarted{}, LoginFailed{}, SessionEnded{}, SessionRefreshed{}, OTPSecretGenerated{},
		OTPEnabled{}, OTPVerified{}, OTPDisabled{}, UserStateChanged{}, RoleChanged{}, UserDeleted{},
		LabelAdded{}, LabelUpdated{}, LabelRemoved{}, LevelChanged{}, WalletCredited{}, WalletDebited{},
		LoginDisabled{}, LoginEnabled{}, AccountClosed{}, SecretCheckFailed{}, PasswordRehashed{},
		ProfileCreated{}, ProfileUpdated{}, ProfileStateChanged{}, UserSettingsChanged{},
		PhoneAdded{}, PhoneCodeSent{}, PhoneVerified{}, DocumentUploaded{}, DocumentReviewed{},
		DataStored{}, DataStorageDeleted{},
		UserErased{},
	} {
		r.Register(e, 1)
	}
	for _, e := range append(append(apiKeyEvents(), accessPolicyEvents()...), RequestAudited{}) {
		r.Register(e, 1)
	}
}

// NewEventRegistry returns a registry holding every domain event.
func NewEventRegistry() *Registry {
	r := NewRegistry()
	RegisterEvents(r)
	return r
}
