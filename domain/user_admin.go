package domain

import (
	"fmt"
	"time"
)

// Administrators' commands of the User: sign-in off and on, two-factor authentication off without
// a code, and closing the account for good. Who may run them is the command layer's business (its
// role table); ChangeRole and ChangeState, also an administrator's, are in user_account.go. See
// User for what every command method promises.

// requireOpen refuses every change to a closed account.
func (u *User) requireOpen() error {
	if u.closed {
		return fmt.Errorf("%w: user %s", ErrAccountClosed, u.id)
	}
	return nil
}

// DisableLogin turns the user's sign-in off without touching their state, role or anything else
// (Wekan's disableLogin), and ends every session open at now: their access tokens are refused from
// the next request. It works in any state but closed; turning off what is off is ErrUnchanged.
func (u *User) DisableLogin(now time.Time) ([]Event, error) {
	if err := u.requireOpen(); err != nil {
		return nil, err
	}
	if u.loginDisabled {
		return nil, fmt.Errorf("%w: sign-in of %s is disabled already", ErrUnchanged, u.id)
	}
	if err := checkTime("now", now); err != nil {
		return nil, err
	}
	events := append([]Event{LoginDisabled{}}, u.endSessions(now, SessionEndLoginDisabled, "")...)
	return u.record(events...), nil
}

// EnableLogin turns the user's sign-in back on. Whether they can sign in still depends on their
// state. Turning on what is on is ErrUnchanged.
func (u *User) EnableLogin() ([]Event, error) {
	if err := u.requireOpen(); err != nil {
		return nil, err
	}
	if !u.loginDisabled {
		return nil, fmt.Errorf("%w: sign-in of %s is enabled already", ErrUnchanged, u.id)
	}
	return u.record(LoginEnabled{}), nil
}

// ResetOTP turns two-factor authentication off without a code: an administrator helping a user who
// lost their authenticator. The secret is forgotten; the last accepted step stays, so codes up to it
// remain refused as replays. It works in any state but closed; ErrOTPNotEnabled if it is off.
func (u *User) ResetOTP() ([]Event, error) {
	if err := u.requireOpen(); err != nil {
		return nil, err
	}
	if !u.otpEnabled {
		return nil, ErrOTPNotEnabled
	}
	return u.record(OTPDisabled{Step: u.lastOTPStep}), nil
}

// Close deletes the account for good, as an administrator: every session open at now ends, and
// AccountClosed names the email and username the command layer releases in the same append, so
// that anyone may register them again. Unlike Delete (the user closing their own account, which an
// administrator can undo), nothing changes a closed account afterwards: its email may belong to
// someone else. It works in any state; closing twice is ErrAccountClosed.
func (u *User) Close(now time.Time) ([]Event, error) {
	if err := u.requireOpen(); err != nil {
		return nil, err
	}
	if err := checkTime("now", now); err != nil {
		return nil, err
	}
	events := append([]Event{AccountClosed{Email: u.email, Username: u.username}}, u.endSessions(now, SessionEndAccountClosed, "")...)
	return u.record(events...), nil
}
