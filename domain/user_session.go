package domain

import (
	"bytes"
	"cmp"
	"container/heap"
	"crypto/subtle"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Sign-in, sessions and two-factor authentication commands of the User. See User for what every
// command method promises.

// maxOTPCiphertext bounds the encrypted TOTP secret (a 20-byte secret sealed is under 100 bytes).
const maxOTPCiphertext = 1024

// SessionStart is a successful sign-in, as the command layer saw it: the password was verified
// (auth), and with two-factor authentication on, the code was validated against the user's secret
// and OTPStep is its time step.
type SessionStart struct {
	SessionID string    // a new random id; the access token carries it as "sid"
	At        time.Time // now
	ExpiresAt time.Time // when the session ends by itself; after At
	OTPStep   int64     // the TOTP step of the code given; 0 when two-factor authentication is off
	// RefreshHash is the SHA-256 (auth.HashToken) of the session's refresh token; with it the
	// session can be renewed (RefreshSession) up to EndsAt, which must not be before ExpiresAt.
	// Without it the session ends at ExpiresAt.
	RefreshHash string
	EndsAt      time.Time
	// CSRFHash is the SHA-256 of the CSRF token of a cookie session; empty for a bearer session.
	CSRFHash string
}

// DefaultSessionLimit is how many sessions a user may have open at once when LimitSessions was not
// given another limit: enough for every device of a person, few enough that the user's state (and
// the copy every command takes of it) stays small whatever their history.
const DefaultSessionLimit = 100

// MaxSessionLimit bounds the limit LimitSessions accepts.
const MaxSessionLimit = 10000

// maxSessionsEndedAtOnce bounds the sessions one sign-in ends for the limit, so that its events
// fit one append however far over the limit a user's history left them; the next sign-ins end
// the rest.
const maxSessionsEndedAtOnce = 1000

// LimitSessions sets how many sessions the user may have open at once (0 means
// DefaultSessionLimit): a sign-in beyond it ends the oldest open ones first. Like UseLevels it is
// configuration, not state: the command layer sets the configured limit on every user it loads.
func (u *User) LimitSessions(n int) { u.sessionLimit = n }

func (u *User) maxSessions() int {
	if u.sessionLimit <= 0 {
		return DefaultSessionLimit
	}
	return min(u.sessionLimit, MaxSessionLimit)
}

// StartSession opens a session. The user must be active (ErrUserNotActive) with sign-in not
// disabled by an administrator (ErrLoginDisabled). With two-factor
// authentication on, a code is required (ErrOTPRequired) and its step must be after the last
// accepted one (ErrOTPReplayed); with it off, giving a step is a mistake (ErrOTPNotEnabled).
// A successful sign-in clears the count of failed ones. When the user already has as many sessions
// open as their limit (LimitSessions), the oldest ones end first (SessionEnded, reason
// session_limit), before SessionStarted.
func (u *User) StartSession(s SessionStart) ([]Event, error) {
	if err := u.requireActive(); err != nil {
		return nil, err
	}
	if u.loginDisabled {
		return nil, fmt.Errorf("%w: user %s", ErrLoginDisabled, u.id)
	}
	if err := checkSessionID(s.SessionID); err != nil {
		return nil, err
	}
	if err := checkTime("start", s.At); err != nil {
		return nil, err
	}
	if !s.ExpiresAt.After(s.At) {
		return nil, fmt.Errorf("%w: session expiry %s is not after its start %s", ErrInvalidArgument, s.ExpiresAt, s.At)
	}
	if _, taken := u.sessions[s.SessionID]; taken {
		return nil, fmt.Errorf("%w: session id %s is already used", ErrInvalidArgument, s.SessionID)
	}
	switch {
	case u.otpEnabled && s.OTPStep == 0:
		return nil, ErrOTPRequired
	case u.otpEnabled:
		if err := u.checkOTPStep(s.OTPStep); err != nil {
			return nil, err
		}
	case s.OTPStep != 0:
		return nil, fmt.Errorf("%w: sign-in carried a code step", ErrOTPNotEnabled)
	}
	started := SessionStarted{SessionID: s.SessionID, At: s.At.UTC(), ExpiresAt: s.ExpiresAt.UTC(), OTPStep: s.OTPStep}
	if s.RefreshHash != "" {
		if err := checkTokenHash(s.RefreshHash); err != nil {
			return nil, err
		}
		if s.EndsAt.Before(s.ExpiresAt) {
			return nil, fmt.Errorf("%w: session end %s is before its expiry %s", ErrInvalidArgument, s.EndsAt, s.ExpiresAt)
		}
		started.RefreshHash, started.EndsAt = s.RefreshHash, s.EndsAt.UTC()
	} else if !s.EndsAt.IsZero() {
		return nil, fmt.Errorf("%w: a session end without a refresh token", ErrInvalidArgument)
	}
	if s.CSRFHash != "" {
		if err := checkTokenHash(s.CSRFHash); err != nil {
			return nil, err
		}
		started.CSRFHash = s.CSRFHash
	}
	events := u.endOldestSessions(s.At, u.maxSessions()-1)
	events = append(events, started)
	return u.record(events...), nil
}

// endOldestSessions returns a SessionEnded (reason session_limit) for each of the oldest sessions
// open at now beyond the `keep` most recent ones: oldest start first, then by id, so that the same
// history always gives the same events. It walks the open sessions only when there are too many,
// and there are at most the limit of them.
func (u *User) endOldestSessions(now time.Time, keep int) []Event {
	if len(u.sessions) <= keep {
		return nil
	}
	type open struct {
		id string
		session
	}
	var all []open
	for sid, s := range u.sessions {
		if s.expires.After(now) {
			all = append(all, open{sid, s})
		}
	}
	if len(all) <= keep {
		return nil
	}
	slices.SortFunc(all, func(a, b open) int {
		if c := a.started.Compare(b.started); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
	var events []Event
	for _, o := range all[:min(len(all)-keep, maxSessionsEndedAtOnce)] {
		events = append(events, SessionEnded{SessionID: o.id, Reason: SessionEndSessionLimit})
	}
	return events
}

// FailLogin records a failed sign-in of this user at `at`, whatever its state, for the activity log
// (and FailedLogins).
func (u *User) FailLogin(reason LoginFailure, at time.Time) ([]Event, error) {
	if !reason.valid() {
		return nil, fmt.Errorf("%w: login failure reason %q", ErrInvalidArgument, reason)
	}
	if err := checkTime("at", at); err != nil {
		return nil, err
	}
	return u.record(LoginFailed{Reason: reason, At: at.UTC()}), nil
}

// EndSession closes a session: the user signed out. It works in any state, so a session can always
// be closed; an unknown or already closed session is ErrSessionNotFound.
func (u *User) EndSession(sid string) ([]Event, error) {
	if _, ok := u.sessions[sid]; !ok {
		return nil, fmt.Errorf("%w: %q", ErrSessionNotFound, sid)
	}
	return u.record(SessionEnded{SessionID: sid, Reason: SessionEndLogout}), nil
}

// SessionRefresh is the use of a refresh token, as the command layer saw it.
type SessionRefresh struct {
	SessionID string
	TokenHash string    // SHA-256 of the refresh token presented
	NewHash   string    // SHA-256 of the token that replaces it
	At        time.Time // now
	ExpiresAt time.Time // now plus the idle timeout; the session's end caps it
	// NewCSRFHash, for a cookie session, replaces its CSRF token; empty keeps it.
	NewCSRFHash string
}

// MaxRotatedRefreshKept is how many refresh tokens each session remembers after they were
// rotated away, to recognise their reuse. The race it is for (a stolen token and its owner's copy
// both used, one after the other) shows as the token just replaced; a few more cover a thief
// who refreshed a few times before the owner came back, and the state stays a few hundred bytes
// per session. An older token is simply unknown (ErrRefreshTokenInvalid).
const MaxRotatedRefreshKept = 4

// RefreshSession renews an open session whose current refresh token is the one presented: the
// token is replaced by NewHash (rotation) and the session is open until ExpiresAt, capped by its
// end (SessionRefreshed). The user must be active with sign-in enabled. A token rotated away
// already is ErrRefreshTokenReused (then end the session: RevokeSession with
// SessionEndRefreshReuse); any other token, or a session that is closed, expired or not
// renewable, is ErrRefreshTokenInvalid.
func (u *User) RefreshSession(r SessionRefresh) ([]Event, error) {
	if err := u.requireActive(); err != nil {
		return nil, err
	}
	if u.loginDisabled {
		return nil, fmt.Errorf("%w: user %s", ErrLoginDisabled, u.id)
	}
	if err := checkTime("refresh", r.At); err != nil {
		return nil, err
	}
	if err := checkTokenHash(r.NewHash); err != nil {
		return nil, err
	}
	if !r.ExpiresAt.After(r.At) {
		return nil, fmt.Errorf("%w: session expiry %s is not after the refresh %s", ErrInvalidArgument, r.ExpiresAt, r.At)
	}
	if r.NewCSRFHash != "" {
		if err := checkTokenHash(r.NewCSRFHash); err != nil {
			return nil, err
		}
	}
	s, ok := u.sessions[r.SessionID]
	if !ok || s.refresh == "" || !s.expires.After(r.At) {
		return nil, fmt.Errorf("%w: no renewable session %q", ErrRefreshTokenInvalid, r.SessionID)
	}
	if !hashMatches(s.refresh, r.TokenHash) {
		for _, old := range s.rotated {
			if hashMatches(old, r.TokenHash) {
				return nil, fmt.Errorf("%w: session %q", ErrRefreshTokenReused, r.SessionID)
			}
		}
		return nil, fmt.Errorf("%w: not the token of session %q", ErrRefreshTokenInvalid, r.SessionID)
	}
	expires := r.ExpiresAt
	if end := s.end(); expires.After(end) {
		expires = end
	}
	if s.csrf == "" && r.NewCSRFHash != "" {
		return nil, fmt.Errorf("%w: a CSRF token for bearer session %q", ErrInvalidArgument, r.SessionID)
	}
	return u.record(SessionRefreshed{SessionID: r.SessionID, At: r.At.UTC(), ExpiresAt: expires.UTC(), RefreshHash: r.NewHash, CSRFHash: r.NewCSRFHash}), nil
}

// RevokeSession ends a session for a reason other than its own sign-out: the user ended it from
// their list (SessionEndRevoked), an administrator did (SessionEndRevokedByAdmin), or its
// refresh token was reused (SessionEndRefreshReuse). It works in any state; an unknown or closed
// session is ErrSessionNotFound.
func (u *User) RevokeSession(sid string, reason SessionEnd) ([]Event, error) {
	switch reason {
	case SessionEndRevoked, SessionEndRevokedByAdmin, SessionEndRefreshReuse:
	default:
		return nil, fmt.Errorf("%w: revocation reason %q", ErrInvalidArgument, reason)
	}
	if _, ok := u.sessions[sid]; !ok {
		return nil, fmt.Errorf("%w: %q", ErrSessionNotFound, sid)
	}
	return u.record(SessionEnded{SessionID: sid, Reason: reason}), nil
}

// RevokeAllSessions ends every session open at now (SessionEndRevokedByAdmin), in any state. With
// none open it records nothing.
func (u *User) RevokeAllSessions(now time.Time) ([]Event, error) {
	if err := checkTime("now", now); err != nil {
		return nil, err
	}
	return u.record(u.endSessions(now, SessionEndRevokedByAdmin, "")...), nil
}

// CSRFMatches reports whether the session is a cookie session whose CSRF token has this SHA-256,
// compared in constant time.
func (u *User) CSRFMatches(sid, hash string) bool {
	s, ok := u.sessions[sid]
	return ok && s.csrf != "" && hashMatches(s.csrf, hash)
}

// CookieSession reports whether the session is a cookie session (it has a CSRF token).
func (u *User) CookieSession(sid string) bool { return u.sessions[sid].csrf != "" }

// hashMatches compares token hashes in constant time.
func hashMatches(stored, given string) bool {
	return subtle.ConstantTimeCompare([]byte(stored), []byte(given)) == 1
}

// endSessions returns a SessionEnded for every session open at now except keep, in id order so
// that the same history always gives the same events.
func (u *User) endSessions(now time.Time, reason SessionEnd, keep string) []Event {
	var events []Event
	for _, sid := range u.OpenSessions(now) {
		if sid != keep {
			events = append(events, SessionEnded{SessionID: sid, Reason: reason})
		}
	}
	return events
}

func (u *User) checkOTPStep(step int64) error {
	if step <= 0 {
		return fmt.Errorf("%w: TOTP step %d", ErrInvalidArgument, step)
	}
	if step <= u.lastOTPStep {
		return fmt.Errorf("%w: step %d, last accepted %d", ErrOTPReplayed, step, u.lastOTPStep)
	}
	return nil
}

// GenerateOTPSecret stores a new TOTP secret, encrypted by the caller, to be enabled with
// EnableOTP. It replaces a secret that was generated and not enabled; with two-factor
// authentication on, it is refused (ErrOTPAlreadyEnabled): disable first.
func (u *User) GenerateOTPSecret(ciphertext []byte) ([]Event, error) {
	if err := u.requireActive(); err != nil {
		return nil, err
	}
	if u.otpEnabled {
		return nil, ErrOTPAlreadyEnabled
	}
	if len(ciphertext) == 0 || len(ciphertext) > maxOTPCiphertext {
		return nil, fmt.Errorf("%w: encrypted secret of %d bytes, want 1-%d", ErrInvalidArgument, len(ciphertext), maxOTPCiphertext)
	}
	return u.record(OTPSecretGenerated{Ciphertext: bytes.Clone(ciphertext)}), nil
}

// EnableOTP turns two-factor authentication on. The command layer validated the user's code
// against the generated secret (auth), and step is the code's time step: it must be after the last
// accepted one (ErrOTPReplayed).
func (u *User) EnableOTP(step int64) ([]Event, error) {
	if err := u.requireActive(); err != nil {
		return nil, err
	}
	if u.otpEnabled {
		return nil, ErrOTPAlreadyEnabled
	}
	if len(u.otpSecret) == 0 {
		return nil, ErrOTPSecretMissing
	}
	if err := u.checkOTPStep(step); err != nil {
		return nil, err
	}
	return u.record(OTPEnabled{Step: step}), nil
}

// VerifyOTP accepts a code, of time step step, that the command layer validated, outside sign-in
// (before a sensitive action), and remembers it so that it cannot be used again.
func (u *User) VerifyOTP(step int64) ([]Event, error) {
	if err := u.requireActive(); err != nil {
		return nil, err
	}
	if !u.otpEnabled {
		return nil, ErrOTPNotEnabled
	}
	if err := u.checkOTPStep(step); err != nil {
		return nil, err
	}
	return u.record(OTPVerified{Step: step}), nil
}

// DisableOTP turns two-factor authentication off with a validated code of time step step, and
// forgets the secret. The last accepted step is kept: codes are refused as replays up to it even
// with a new secret, so re-enabling within the same 30 seconds needs the next code.
func (u *User) DisableOTP(step int64) ([]Event, error) {
	if err := u.requireActive(); err != nil {
		return nil, err
	}
	if !u.otpEnabled {
		return nil, ErrOTPNotEnabled
	}
	if err := u.checkOTPStep(step); err != nil {
		return nil, err
	}
	return u.record(OTPDisabled{Step: step}), nil
}

// session is an open session of a user.
type session struct {
	started, expires time.Time
	ends             time.Time // when refreshes can take it no further; zero: expires
	refresh          string    // SHA-256 of its current refresh token; "" if it is not renewable
	// rotated holds the SHA-256 of its last refresh tokens replaced, oldest first, at most
	// MaxRotatedRefreshKept. Users are cloned with their sessions' slices shared: it is replaced,
	// never changed in place.
	rotated []string
	csrf    string // SHA-256 of its CSRF token; "" for a bearer session
}

// end is when the session ends at the latest.
func (s session) end() time.Time {
	if s.ends.IsZero() {
		return s.expires
	}
	return s.ends
}

// refreshed is the session after SessionRefreshed.
func (s session) refreshed(e SessionRefreshed) session {
	keep := s.rotated[max(0, len(s.rotated)-(MaxRotatedRefreshKept-1)):]
	rotated := make([]string, 0, len(keep)+1)
	s.rotated = append(append(rotated, keep...), s.refresh)
	s.refresh, s.expires = e.RefreshHash, e.ExpiresAt
	if e.CSRFHash != "" {
		s.csrf = e.CSRFHash
	}
	return s
}

// sessionExpiry is an entry of the expiry heap: the session sid expires at expires.
type sessionExpiry struct {
	expires time.Time
	sid     string
}

// expiryHeap orders sessions by expiry, soonest first (container/heap), so that a sign-in forgets
// the expired sessions without walking the open ones. An ended session leaves its entry behind
// until it comes up or the heap is rebuilt.
type expiryHeap []sessionExpiry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].expires.Before(h[j].expires) }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(sessionExpiry)) }
func (h *expiryHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// addSession opens a session.
func (u *User) addSession(sid string, s session) {
	u.sessions[sid] = s
	heap.Push(&u.expiries, sessionExpiry{expires: s.expires, sid: sid})
}

// removeSession closes a session. Its heap entry stays; when ended sessions' entries outnumber
// the open sessions, the heap is rebuilt, so it stays within twice their number.
func (u *User) removeSession(sid string) {
	delete(u.sessions, sid)
	u.trimExpiries()
}

// trimExpiries rebuilds the heap when the entries of ended or refreshed sessions outnumber the
// open sessions, so it stays within twice their number.
func (u *User) trimExpiries() {
	if len(u.expiries) > 2*len(u.sessions)+16 {
		u.rebuildExpiries()
	}
}

// pruneSessions forgets the sessions that expired at or before at.
func (u *User) pruneSessions(at time.Time) {
	for len(u.expiries) > 0 && !u.expiries[0].expires.After(at) {
		x := heap.Pop(&u.expiries).(sessionExpiry)
		// An entry of an ended session whose id was used again must not end the new one.
		if s, ok := u.sessions[x.sid]; ok && s.expires.Equal(x.expires) {
			delete(u.sessions, x.sid)
		}
	}
}

// rebuildExpiries makes the heap hold exactly the open sessions, in an order that depends only on
// them (expiry, then id).
func (u *User) rebuildExpiries() {
	h := make(expiryHeap, 0, len(u.sessions))
	for sid, s := range u.sessions {
		h = append(h, sessionExpiry{expires: s.expires, sid: sid})
	}
	slices.SortFunc(h, func(a, b sessionExpiry) int {
		return cmp.Or(a.expires.Compare(b.expires), strings.Compare(a.sid, b.sid))
	})
	u.expiries = h // a sorted slice is a heap
}
