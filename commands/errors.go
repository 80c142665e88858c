package commands

import (
	"errors"
	"fmt"
	"time"
)

// Errors of the command layer. Domain errors (domain.Err*) and auth errors (auth.ErrWeakPassword,
// auth.ErrOTPCodeInvalid) come through wrapped, unchanged; callers test every error with errors.Is.
var (
	// ErrInvalidCredentials: the login is unknown or the password is wrong. Both give this one
	// error, so a caller cannot tell which (no user enumeration).
	ErrInvalidCredentials = errors.New("commands: invalid login or password")
	// ErrWrongPassword: a signed-in user confirmed a change with a wrong password.
	ErrWrongPassword = errors.New("commands: wrong password")
	// ErrPasswordMismatch: the new password and its confirmation differ.
	ErrPasswordMismatch = errors.New("commands: password and confirmation differ")
	// ErrSamePassword: the new password is the current one.
	ErrSamePassword = errors.New("commands: new password equals the old one")
	// ErrMissingPassword: a command that needs a password got none.
	ErrMissingPassword = errors.New("commands: password is required")
	// ErrEmailTaken: another user holds the email address.
	ErrEmailTaken = errors.New("commands: email address already taken")
	// ErrUsernameTaken: another user holds the username.
	ErrUsernameTaken = errors.New("commands: username already taken")
	// ErrUserNotFound: no user has that id.
	ErrUserNotFound = errors.New("commands: user not found")
	// ErrReferrerNotFound: the referrer id names no user.
	ErrReferrerNotFound = errors.New("commands: referrer not found")
	// ErrConflict: the user's stream kept changing under the command; it gave up after its
	// retries. See ConflictError.
	ErrConflict = errors.New("commands: concurrent changes, gave up")
	// ErrThrottled: too many failed attempts at a secret (a sign-in, a password, a two-factor
	// code, a token); the next must wait. See ThrottledError.
	ErrThrottled = errors.New("commands: too many failed attempts")
	// ErrCommandInvalid: the command itself is malformed (an empty user id, say): a bug of the
	// caller, not the user's input.
	ErrCommandInvalid = errors.New("commands: invalid command")
)

// ConflictError says how many times a command tried. errors.Is(err, ErrConflict) holds.
type ConflictError struct {
	Stream   string
	Attempts int
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("commands: stream %s changed under %d attempts", e.Stream, e.Attempts)
}

// Is makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// ThrottleScope says what an attempt was throttled for.
type ThrottleScope string

// The throttle scopes: a sign-in's login or client address, or the secret a signed-in user or a
// token holder presented.
const (
	ThrottleAccount  ThrottleScope = "account"
	ThrottleAddress  ThrottleScope = "address"
	ThrottlePassword ThrottleScope = kindPassword
	ThrottleOTP      ThrottleScope = kindOTP
	ThrottleToken    ThrottleScope = kindToken
)

// ThrottledError says what is throttled and for how long. errors.Is(err, ErrThrottled) holds.
type ThrottledError struct {
	Scope      ThrottleScope
	RetryAfter time.Duration
}

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("commands: too many failed attempts (%s); retry after %s", e.Scope, e.RetryAfter.Round(time.Second))
}

// Is makes errors.Is(err, ErrThrottled) true.
func (e *ThrottledError) Is(target error) bool { return target == ErrThrottled }
