package domain

import "errors"

// Errors of the User aggregate. Command methods wrap them with detail (fmt.Errorf("%w: ...")), so
// callers test them with errors.Is; the API maps each to one status and error code in one place.
//
// Errors of the first group are about input a person typed; the API shows them (422 mostly).
// Errors of the second group are rule violations the API maps to 401/403/409/422. ErrInvalidArgument
// and ErrNotRegistered are mistakes of the calling code, not of the user, and map to 500.
var (
	// ErrEmailInvalid: the email address is empty, too long or not of the form local@domain.tld.
	ErrEmailInvalid = errors.New("domain: invalid email address")
	// ErrUsernameInvalid: the username is not 3-32 characters of [a-z0-9_.-].
	ErrUsernameInvalid = errors.New("domain: invalid username")
	// ErrUserIDInvalid: not "ID" followed by 10 upper-case hexadecimal digits.
	ErrUserIDInvalid = errors.New("domain: invalid user id")
	// ErrRefIDInvalid: the referrer id is not a user id, or is the new user's own id.
	ErrRefIDInvalid = errors.New("domain: invalid referrer id")
	// ErrDataInvalid: the user's free data is not valid JSON or is larger than MaxUserDataBytes.
	ErrDataInvalid = errors.New("domain: invalid user data")
	// ErrRoleInvalid: the name is not one of the roles of Roles().
	ErrRoleInvalid = errors.New("domain: invalid role")
	// ErrStateInvalid: the name is not one of the states of States().
	ErrStateInvalid = errors.New("domain: invalid user state")

	// ErrUnchanged: the command would set a value the user already has (same email, username,
	// role or state). Nothing is recorded.
	ErrUnchanged = errors.New("domain: value unchanged")
	// ErrUserNotActive: the user is banned, locked or deleted, and the command needs an active user.
	ErrUserNotActive = errors.New("domain: user is not active")
	// ErrEmailAlreadyVerified: the current email is verified already.
	ErrEmailAlreadyVerified = errors.New("domain: email already verified")
	// ErrTokenInvalid: an email or password-reset token does not match the one requested last, or
	// none is pending (it was used, replaced, or never requested).
	ErrTokenInvalid = errors.New("domain: invalid token")
	// ErrTokenExpired: the token matches but its expiry has passed.
	ErrTokenExpired = errors.New("domain: token expired")
	// ErrOTPAlreadyEnabled: two-factor authentication is on already.
	ErrOTPAlreadyEnabled = errors.New("domain: two-factor authentication already enabled")
	// ErrOTPNotEnabled: two-factor authentication is off.
	ErrOTPNotEnabled = errors.New("domain: two-factor authentication not enabled")
	// ErrOTPSecretMissing: enabling two-factor authentication before a secret was generated.
	ErrOTPSecretMissing = errors.New("domain: no two-factor secret generated")
	// ErrOTPRequired: two-factor authentication is on and the sign-in carried no code.
	ErrOTPRequired = errors.New("domain: two-factor code required")
	// ErrOTPReplayed: the code's time step is not after the last accepted one (RFC 6238 §5.2:
	// a code is accepted once only).
	ErrOTPReplayed = errors.New("domain: two-factor code already used")
	// ErrSessionNotFound: no open session has that id.
	ErrSessionNotFound = errors.New("domain: session not found")

	// ErrInvalidArgument: the calling code passed a malformed value (empty hash, zero time, bad
	// session id, ...). It is a bug of the caller, never the user's input.
	ErrInvalidArgument = errors.New("domain: invalid argument")
	// ErrNotRegistered: a history that does not start with UserRegistered, or a second
	// UserRegistered in one history.
	ErrNotRegistered = errors.New("domain: history does not start with UserRegistered")
)
