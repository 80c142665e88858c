package domain

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// Account commands of the User: email, password, username, data, role and state. See User for
// what every command method promises.

// maxStateReasonLength bounds the free-text reason of a state change.
const maxStateReasonLength = 500

func (u *User) requireActive() error {
	if u.state != StateActive {
		return fmt.Errorf("%w: user %s is %s", ErrUserNotActive, u.id, u.state)
	}
	return nil
}

func checkTime(name string, t time.Time) error {
	if t.IsZero() {
		return fmt.Errorf("%w: %s is the zero time", ErrInvalidArgument, name)
	}
	return nil
}

// checkToken checks a presented token hash against a pending token at now.
func checkToken(kind string, p *pendingToken, hash string, now time.Time) error {
	if !tokenMatches(p, hash) {
		return fmt.Errorf("%w: %s token does not match a pending one", ErrTokenInvalid, kind)
	}
	if !now.Before(p.expiresAt) {
		return fmt.Errorf("%w: %s token expired at %s", ErrTokenExpired, kind, p.expiresAt.Format(time.RFC3339))
	}
	return nil
}

// RequestEmailVerification records that a token to confirm the current email was sent. tokenHash is
// auth.HashToken of the token (the plain token goes to the mailer only); it is valid until
// expiresAt and replaces any earlier one.
func (u *User) RequestEmailVerification(tokenHash string, expiresAt time.Time) ([]Event, error) {
	if err := u.requireActive(); err != nil {
		return nil, err
	}
	if u.emailVerified {
		return nil, fmt.Errorf("%w: %s", ErrEmailAlreadyVerified, u.email)
	}
	if err := checkTokenHash(tokenHash); err != nil {
		return nil, err
	}
	if err := checkTime("expiry", expiresAt); err != nil {
		return nil, err
	}
	return u.record(EmailVerificationRequested{Email: u.email, TokenHash: tokenHash, ExpiresAt: expiresAt.UTC()}), nil
}

// VerifyEmail confirms the current email with the hash of the token the user presented. The token
// must be the last one requested (ErrTokenInvalid) and not expired at now (ErrTokenExpired); it
// cannot be used twice. The user gets the private label email=verified (LabelAdded, or LabelUpdated
// if the key held another value) and LevelChanged when that raises their level.
func (u *User) VerifyEmail(tokenHash string, now time.Time) ([]Event, error) {
	if err := u.requireActive(); err != nil {
		return nil, err
	}
	if u.emailVerified {
		return nil, fmt.Errorf("%w: %s", ErrEmailAlreadyVerified, u.email)
	}
	if err := checkToken("email", u.emailToken, tokenHash, now); err != nil {
		return nil, err
	}
	events := u.record(EmailVerified{Email: u.email})
	return append(events, u.setPrivateLabel(EmailLabelKey, LabelValueVerified)...), nil
}

// ChangePassword sets a new password hash for a signed-in user (who proved the old password to
// the command layer) and ends every open session except keepSession (the one making the change;
// empty ends them all). A pending password reset is cancelled.
func (u *User) ChangePassword(newHash string, now time.Time, keepSession string) ([]Event, error) {
	if err := u.requireActive(); err != nil {
		return nil, err
	}
	if err := checkPasswordHash(newHash); err != nil {
		return nil, err
	}
	if err := checkTime("now", now); err != nil {
		return nil, err
	}
	events := append([]Event{PasswordChanged{PasswordHash: newHash}}, u.endSessions(now, SessionEndPasswordChanged, keepSession)...)
	return u.record(events...), nil
}

// RehashPassword replaces the hash of the current password by newHash, a hash of the same
// password with other costs that the command layer made after the password was proven. Nothing
// else changes: sessions stay open, a pending reset stays valid.
func (u *User) RehashPassword(newHash string) ([]Event, error) {
	if err := checkPasswordHash(newHash); err != nil {
		return nil, err
	}
	if newHash == u.passwordHash {
		return nil, ErrUnchanged
	}
	return u.record(PasswordRehashed{PasswordHash: newHash}), nil
}

// RequestPasswordReset records that a reset token was sent to the user's email. tokenHash is
// auth.HashToken of the token; it is valid until expiresAt and replaces any earlier one.
func (u *User) RequestPasswordReset(tokenHash string, expiresAt time.Time) ([]Event, error) {
	if err := u.requireActive(); err != nil {
		return nil, err
	}
	if err := checkTokenHash(tokenHash); err != nil {
		return nil, err
	}
	if err := checkTime("expiry", expiresAt); err != nil {
		return nil, err
	}
	return u.record(PasswordResetRequested{TokenHash: tokenHash, ExpiresAt: expiresAt.UTC()}), nil
}

// ResetPassword replaces a forgotten password using the hash of the reset token the user
// presented (the last requested, not expired at now), and ends every open session.
func (u *User) ResetPassword(tokenHash, newHash string, now time.Time) ([]Event, error) {
	if err := u.requireActive(); err != nil {
		return nil, err
	}
	if err := checkToken("password reset", u.resetToken, tokenHash, now); err != nil {
		return nil, err
	}
	if err := checkPasswordHash(newHash); err != nil {
		return nil, err
	}
	events := append([]Event{PasswordReset{PasswordHash: newHash}}, u.endSessions(now, SessionEndPasswordReset, "")...)
	return u.record(events...), nil
}

// ChangeEmail sets a new email address (normalised here). It is not verified until the user
// confirms it again, and pending email and reset tokens, sent to the old address, are cancelled.
// The private label email=verified, which spoke of the old address, is removed (LabelRemoved, and
// LevelChanged when the level drops) until the new address is confirmed.
// The command layer releases the old address's unique key and claims the new one (EmailChanged
// holds both).
func (u *User) ChangeEmail(raw string) ([]Event, error) {
	if err := u.requireActive(); err != nil {
		return nil, err
	}
	email, err := NormalizeEmail(raw)
	if err != nil {
		return nil, err
	}
	if email == u.email {
		return nil, fmt.Errorf("%w: email is already %s", ErrUnchanged, email)
	}
	events := u.record(EmailChanged{From: u.email, To: email})
	return append(events, u.removePrivateLabel(EmailLabelKey, LabelValueVerified)...), nil
}

// ChangeUsername sets a new username (normalised here). A username can be changed, not removed.
func (u *User) ChangeUsername(raw string) ([]Event, error) {
	if err := u.requireActive(); err != nil {
		return nil, err
	}
	name, err := NormalizeUsername(raw)
	if err != nil {
		return nil, err
	}
	if name == u.username {
		return nil, fmt.Errorf("%w: username is already %s", ErrUnchanged, name)
	}
	return u.record(UsernameChanged{From: u.username, To: name}), nil
}

// UpdateData replaces the user's free JSON data. Empty input or JSON null removes it.
func (u *User) UpdateData(data json.RawMessage) ([]Event, error) {
	if err := u.requireActive(); err != nil {
		return nil, err
	}
	d, err := normalizeData(data)
	if err != nil {
		return nil, err
	}
	if bytes.Equal(d, u.data) {
		return nil, fmt.Errorf("%w: same data", ErrUnchanged)
	}
	return u.record(UserDataUpdated{Data: d}), nil
}

// ChangeRole gives the user another role. It is an administrator's command and works in any state
// but closed (ErrAccountClosed).
func (u *User) ChangeRole(to Role) ([]Event, error) {
	if err := u.requireOpen(); err != nil {
		return nil, err
	}
	if to.IsZero() {
		return nil, fmt.Errorf("%w: zero role", ErrRoleInvalid)
	}
	if to == u.role {
		return nil, fmt.Errorf("%w: role is already %s", ErrUnchanged, to)
	}
	return u.record(RoleChanged{From: u.role, To: to}), nil
}

// ChangeState moves the account to another state (an administrator's command; reason is free
// text for the audit, at most 500 bytes). Leaving StateActive ends every session open at now;
// returning to it clears the count of failed sign-ins. A closed account cannot change state any more
// (ErrAccountClosed): its email may belong to someone else by now.
func (u *User) ChangeState(to State, reason string, now time.Time) ([]Event, error) {
	if err := u.requireOpen(); err != nil {
		return nil, err
	}
	if to.IsZero() {
		return nil, fmt.Errorf("%w: zero state", ErrStateInvalid)
	}
	if to == u.state {
		return nil, fmt.Errorf("%w: state is already %s", ErrUnchanged, to)
	}
	if len(reason) > maxStateReasonLength {
		return nil, fmt.Errorf("%w: reason is %d bytes, at most %d", ErrInvalidArgument, len(reason), maxStateReasonLength)
	}
	if err := checkTime("now", now); err != nil {
		return nil, err
	}
	events := []Event{UserStateChanged{From: u.state, To: to, Reason: reason}}
	if to != StateActive {
		events = append(events, u.endSessions(now, SessionEndStateChanged, "")...)
	}
	return u.record(events...), nil
}

// Delete is the user deleting their own account (after the command layer checked their password
// and, with two-factor authentication on, a code): the user is in StateDeleted and every session
// open at now ends. An administrator can bring the account back with ChangeState.
func (u *User) Delete(now time.Time) ([]Event, error) {
	if err := u.requireActive(); err != nil {
		return nil, err
	}
	if err := checkTime("now", now); err != nil {
		return nil, err
	}
	events := append([]Event{UserDeleted{}}, u.endSessions(now, SessionEndAccountDeleted, "")...)
	return u.record(events...), nil
}
