package domain

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// User is the account aggregate: identity, credentials, email verification, two-factor
// authentication, role, state, open sessions, labels with the level they grant, and the coin
// wallet.
//
// A User comes from Register (a new user) or RehydrateUser (a stored one); the zero User is not
// usable. Command methods check the rules against the current state, and on success apply their
// events to the receiver and return them for the caller to append; on error they change nothing and
// return no events. They take time, hashes and random values as arguments: the domain has no clock,
// no randomness and no I/O. A User is not safe for concurrent use; load one per command.
//
// Version is the stream version the user was rebuilt at: the expected version for appending the
// events its commands return (0, no stream, after Register).
type User struct {
	id            UserID
	email         string
	emailVerified bool
	username      string
	passwordHash  string
	role          Role
	state         State
	loginDisabled bool // by an administrator, beside the state (DisableLogin)
	closed        bool // closed for good by an administrator (Close)
	erased        bool // personal data erased (Erase); closed too
	refID         UserID
	data          json.RawMessage

	emailToken *pendingToken // last email verification requested, until used or replaced
	resetToken *pendingToken // last password reset requested, until used or replaced

	otpSecret   []byte // ciphertext; pending until otpEnabled
	otpEnabled  bool
	lastOTPStep int64 // the last TOTP time step accepted, never decreases

	sessions     map[string]session // open session id -> its times
	expiries     expiryHeap         // the sessions' expiries, soonest first; may hold ended ones
	sessionLimit int                // most sessions open at once; configuration, not state (LimitSessions)

	failedLogins    int // sign-in failures since the last successful sign-in
	lastFailedLogin time.Time

	labels map[labelID]labelState
	level  int    // as last recorded by LevelChanged
	levels Levels // the ladder label commands use; configuration, not state (see UseLevels)

	wallet Wallet

	profile  *profile        // nil until ProfileCreated
	settings json.RawMessage // the user's settings object, apart from the profile

	phones      []phone                    // in the order added (user_phones.go)
	documents   []Document                 // in the order uploaded (user_documents.go)
	dataStorage map[string]json.RawMessage // title -> JSON object (user_data_storage.go)
	apiKeys     map[string]apiKey          // kid -> key (user_apikeys.go)

	version uint64
}

type pendingToken struct {
	hash      string
	expiresAt time.Time
}

// NewUser is what Register needs. The caller has drawn the id (NewUserID) and hashed the password
// (auth); Register normalises and validates the rest.
type NewUser struct {
	ID           UserID
	Email        string          // normalised by NormalizeEmail
	Username     string          // optional; normalised by NormalizeUsername
	PasswordHash string          // an encoded (PHC) hash, never the password
	Role         Role            // the zero Role means RoleMember
	RefID        string          // optional: the id of the user who referred this one
	Data         json.RawMessage // optional free JSON, at most MaxUserDataBytes
	// SignupBonus is credited to the free balance at once (WalletCredited, reason signup_bonus)
	// when above 0. The command layer passes the configured bonus.
	SignupBonus int64
	// Levels is the ladder the user's label commands use; the zero Levels means DefaultLevels.
	Levels Levels
}

// Register creates a user: active, email not verified, two-factor authentication off, level 0. It
// returns the user and its first events, UserRegistered and, with a sign-up bonus, WalletCredited,
// to be appended to ID.Stream() with "no stream" expected. Uniqueness of email and username is the command layer's business (unique keys in the
// same append).
func Register(n NewUser) (*User, []Event, error) {
	id, err := ParseUserID(string(n.ID))
	if err != nil {
		return nil, nil, err
	}
	email, err := NormalizeEmail(n.Email)
	if err != nil {
		return nil, nil, err
	}
	var username string
	if n.Username != "" {
		if username, err = NormalizeUsername(n.Username); err != nil {
			return nil, nil, err
		}
	}
	if err := checkPasswordHash(n.PasswordHash); err != nil {
		return nil, nil, err
	}
	role := n.Role
	if role.IsZero() {
		role = RoleMember
	}
	var refID UserID
	if n.RefID != "" {
		if refID, err = ParseUserID(n.RefID); err != nil {
			return nil, nil, fmt.Errorf("%w: %w", ErrRefIDInvalid, err)
		}
		if refID == id {
			return nil, nil, fmt.Errorf("%w: a user cannot refer themselves", ErrRefIDInvalid)
		}
	}
	data, err := normalizeData(n.Data)
	if err != nil {
		return nil, nil, err
	}
	if n.SignupBonus < 0 {
		return nil, nil, fmt.Errorf("%w: negative sign-up bonus %d", ErrInvalidArgument, n.SignupBonus)
	}
	if n.SignupBonus > 0 {
		if err := checkAmount(n.SignupBonus); err != nil {
			return nil, nil, err
		}
	}
	u := &User{}
	events := u.record(UserRegistered{
		UserID: id, Email: email, Username: username, PasswordHash: n.PasswordHash,
		Role: role, RefID: refID, Data: data,
	})
	u.levels = n.Levels
	if n.SignupBonus > 0 {
		events = append(events, u.record(WalletCredited{Balance: BalanceFree, Amount: n.SignupBonus, Reason: WalletReasonSignupBonus})...)
	}
	return u, events, nil
}

// RehydrateUser rebuilds a user from its stored history, oldest first, as decoded by the event
// registry. The first event must be UserRegistered, and only the first. Its label commands use
// DefaultLevels until UseLevels says otherwise. Events the User does not
// know (those of other features sharing the stream) are skipped but still count in Version.
func RehydrateUser(history []Event) (*User, error) {
	if len(history) == 0 {
		return nil, fmt.Errorf("%w: empty history", ErrNotRegistered)
	}
	if _, ok := history[0].(UserRegistered); !ok {
		return nil, fmt.Errorf("%w: first event is %s", ErrNotRegistered, history[0].EventType())
	}
	u := &User{}
	for i, e := range history {
		if _, again := e.(UserRegistered); again && i > 0 {
			return nil, fmt.Errorf("%w: UserRegistered again at version %d", ErrNotRegistered, i+1)
		}
		u.apply(e)
	}
	u.version = uint64(len(history))
	return u, nil
}

// record applies new events to the user and returns them.
func (u *User) record(events ...Event) []Event {
	for _, e := range events {
		u.apply(e)
	}
	return events
}

// apply changes state by one event. It never fails: the rules were checked when the event was
// recorded, and history is not judged again.
func (u *User) apply(e Event) {
	switch e := e.(type) {
	case UserRegistered:
		*u = User{
			id: e.UserID, email: e.Email, username: e.Username, passwordHash: e.PasswordHash,
			role: e.Role, state: StateActive, refID: e.RefID, data: e.Data,
			sessions: map[string]session{},
		}
	case EmailVerificationRequested:
		u.emailToken = &pendingToken{hash: e.TokenHash, expiresAt: e.ExpiresAt}
	case EmailVerified:
		if e.Email == u.email {
			u.emailVerified = true
		}
		u.emailToken = nil
	case PasswordChanged:
		u.passwordHash = e.PasswordHash
		u.resetToken = nil
	case PasswordRehashed:
		u.passwordHash = e.PasswordHash
	case PasswordResetRequested:
		u.resetToken = &pendingToken{hash: e.TokenHash, expiresAt: e.ExpiresAt}
	case PasswordReset:
		u.passwordHash = e.PasswordHash
		u.resetToken = nil
	case EmailChanged:
		u.email = e.To
		u.emailVerified = false
		// Tokens were sent to the old address.
		u.emailToken, u.resetToken = nil, nil
	case UsernameChanged:
		u.username = e.To
	case UserDataUpdated:
		u.data = e.Data
	case SessionStarted:
		// Forget sessions that expired before this sign-in, so the set stays as small as the
		// number of sign-ins within one session lifetime, without walking the open ones.
		u.pruneSessions(e.At)
		u.addSession(e.SessionID, session{started: e.At, expires: e.ExpiresAt, ends: e.EndsAt, refresh: e.RefreshHash, csrf: e.CSRFHash})
		u.failedLogins, u.lastFailedLogin = 0, time.Time{}
		if e.OTPStep > u.lastOTPStep {
			u.lastOTPStep = e.OTPStep
		}
	case LoginFailed:
		u.failedLogins++
		u.lastFailedLogin = e.At
	case SessionEnded:
		u.removeSession(e.SessionID)
	case SessionRefreshed:
		// Expired sessions go here too: a user who only ever refreshes keeps a small state.
		u.pruneSessions(e.At)
		if s, ok := u.sessions[e.SessionID]; ok {
			u.addSession(e.SessionID, s.refreshed(e))
			u.trimExpiries()
		}
	case OTPSecretGenerated:
		u.otpSecret = bytes.Clone(e.Ciphertext)
	case OTPEnabled:
		u.otpEnabled = true
		u.lastOTPStep = max(u.lastOTPStep, e.Step)
	case OTPVerified:
		u.lastOTPStep = max(u.lastOTPStep, e.Step)
	case OTPDisabled:
		u.otpEnabled = false
		u.otpSecret = nil
		u.lastOTPStep = max(u.lastOTPStep, e.Step)
	case UserStateChanged:
		u.state = e.To
		if e.To == StateActive {
			// An administrator unlocking an account gives it a fresh start.
			u.failedLogins, u.lastFailedLogin = 0, time.Time{}
		}
	case RoleChanged:
		u.role = e.To
	case UserDeleted:
		u.state = StateDeleted
	case LoginDisabled:
		u.loginDisabled = true
	case LoginEnabled:
		u.loginDisabled = false
	case AccountClosed:
		u.state, u.closed = StateDeleted, true
	case UserErased:
		u.applyErased()
	case LabelAdded, LabelUpdated, LabelRemoved, LevelChanged:
		u.applyLabel(e)
	case ProfileCreated, ProfileUpdated, ProfileStateChanged, UserSettingsChanged:
		u.applyProfile(e)
	case WalletCredited, WalletDebited:
		u.applyWallet(e)
	case PhoneAdded, PhoneCodeSent, PhoneVerified:
		u.applyPhone(e)
	case DocumentUploaded, DocumentReviewed:
		u.applyDocument(e)
	case DataStored, DataStorageDeleted:
		u.applyDataStorage(e)
	case APIKeyCreated, APIKeyChanged, APIKeyDeleted:
		u.applyAPIKey(e)
	}
}

// ID is the user's id.
func (u *User) ID() UserID { return u.id }

// Email is the user's normalised email address.
func (u *User) Email() string { return u.email }

// EmailVerified reports whether the current email address was confirmed.
func (u *User) EmailVerified() bool { return u.emailVerified }

// Username is the user's normalised username, empty if they have none.
func (u *User) Username() string { return u.username }

// PasswordHash is the encoded hash of the current password, for auth to verify a sign-in against.
func (u *User) PasswordHash() string { return u.passwordHash }

// Role is the user's role.
func (u *User) Role() Role { return u.role }

// State is the user's state.
func (u *User) State() State { return u.state }

// IsActive reports whether the user's account works: they may change it and, unless
// LoginDisabled, sign in.
func (u *User) IsActive() bool { return u.state == StateActive }

// LoginDisabled reports whether an administrator turned the user's sign-in off.
func (u *User) LoginDisabled() bool { return u.loginDisabled }

// Closed reports whether an administrator closed the account for good.
func (u *User) Closed() bool { return u.closed }

// RefID is the id of the user who referred this one, empty if none.
func (u *User) RefID() UserID { return u.refID }

// Data is a copy of the user's free JSON data, nil if none.
func (u *User) Data() json.RawMessage { return bytes.Clone(u.data) }

// OTPEnabled reports whether two-factor authentication is on.
func (u *User) OTPEnabled() bool { return u.otpEnabled }

// OTPSecret is a copy of the encrypted TOTP secret: the enabled one, or the one generated and
// waiting to be enabled; nil if none. Decrypt it with auth.Sealer to validate a code.
func (u *User) OTPSecret() []byte { return bytes.Clone(u.otpSecret) }

// LastOTPStep is the TOTP time step of the last accepted code, 0 if none; a code of this step or
// an earlier one is refused as a replay.
func (u *User) LastOTPStep() int64 { return u.lastOTPStep }

// HasSession reports whether the session is open (started, not ended, not expired) at now.
func (u *User) HasSession(sid string, now time.Time) bool {
	s, ok := u.sessions[sid]
	return ok && s.expires.After(now)
}

// OpenSessions lists the ids of the sessions open at now, sorted.
func (u *User) OpenSessions(now time.Time) []string {
	var out []string
	for sid, s := range u.sessions {
		if s.expires.After(now) {
			out = append(out, sid)
		}
	}
	slices.Sort(out)
	return out
}

// FailedLogins is the number of failed sign-ins since the last successful one (or since an
// administrator reactivated the account), and the time of the last failure. Sign-ins are
// throttled elsewhere (the attempt limiter, shared by replicas), not by this count.
func (u *User) FailedLogins() (count int, last time.Time) { return u.failedLogins, u.lastFailedLogin }

// Version is the stream version the user was rebuilt at (see User).
func (u *User) Version() uint64 { return u.version }

// tokenMatches compares hashes in constant time, so a caller cannot learn a stored hash by timing.
func tokenMatches(p *pendingToken, hash string) bool {
	return p != nil && subtle.ConstantTimeCompare([]byte(p.hash), []byte(hash)) == 1
}
