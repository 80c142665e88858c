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
	// ErrDataInvalid: the user's free data is not a JSON object or array or is larger than
	// MaxUserDataBytes.
	ErrDataInvalid = errors.New("domain: invalid user data")
	// ErrRoleInvalid: the name is not one of the roles of Roles().
	ErrRoleInvalid = errors.New("domain: invalid role")
	// ErrStateInvalid: the name is not one of the states of States().
	ErrStateInvalid = errors.New("domain: invalid user state")
	// ErrLabelKeyInvalid: a label key is not 3-255 characters of [a-z0-9_-].
	ErrLabelKeyInvalid = errors.New("domain: invalid label key")
	// ErrLabelValueInvalid: a label value is not 3-255 characters of [A-Za-z0-9_-].
	ErrLabelValueInvalid = errors.New("domain: invalid label value")
	// ErrLabelScopeInvalid: the scope is not public or private.
	ErrLabelScopeInvalid = errors.New("domain: invalid label scope")
	// ErrLabelDescriptionInvalid: a label description is longer than 255 bytes or holds control
	// characters.
	ErrLabelDescriptionInvalid = errors.New("domain: invalid label description")
	// ErrLevelsInvalid: a level ladder is malformed (a key on two rungs, a rung not key=value).
	ErrLevelsInvalid = errors.New("domain: invalid level ladder")
	// ErrBalanceInvalid: the name is not one of the wallet balances (free, standard).
	ErrBalanceInvalid = errors.New("domain: invalid wallet balance")
	// ErrAmountInvalid: an amount of coins is not a whole number from 1 to MaxCoins, or a credit
	// would take a balance past MaxCoins.
	ErrAmountInvalid = errors.New("domain: invalid amount")
	// ErrWalletReasonInvalid: a wallet movement's reason is not 3-64 characters of [a-z0-9_-].
	ErrWalletReasonInvalid = errors.New("domain: invalid wallet reason")
	// ErrWalletReferenceInvalid: a wallet movement's reference is longer than 255 bytes or holds
	// control characters.
	ErrWalletReferenceInvalid = errors.New("domain: invalid wallet reference")

	// ErrUnchanged: the command would set a value the user already has (same email, username,
	// role or state). Nothing is recorded.
	ErrUnchanged = errors.New("domain: value unchanged")
	// ErrUserNotActive: the user is banned, locked or deleted, and the command needs an active user.
	ErrUserNotActive = errors.New("domain: user is not active")
	// ErrLoginDisabled: an administrator turned the user's sign-in off (DisableLogin).
	ErrLoginDisabled = errors.New("domain: sign-in disabled")
	// ErrAccountClosed: an administrator closed the account for good (Close); nothing can change it
	// any more.
	ErrAccountClosed = errors.New("domain: account closed")
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
	// ErrRefreshTokenInvalid: the refresh token is not the current one of an open, renewable
	// session (unknown, expired, or from before the session's last rotations).
	ErrRefreshTokenInvalid = errors.New("domain: invalid refresh token")
	// ErrRefreshTokenReused: the refresh token was rotated away already and is presented again:
	// someone else holds the session's tokens too.
	ErrRefreshTokenReused = errors.New("domain: refresh token reused")
	// ErrLabelExists: the user holds a label of that key and scope already.
	ErrLabelExists = errors.New("domain: label already exists")
	// ErrLabelNotFound: the user holds no label of that key and scope.
	ErrLabelNotFound = errors.New("domain: label not found")
	// ErrLabelPrivate: a user tried to create, change or remove a private label (or a label whose
	// key they hold privately): only administrators may.
	ErrLabelPrivate = errors.New("domain: private label")
	// ErrInsufficientFunds: the wallet holds fewer coins than a spend or withdrawal takes. Nothing
	// is taken.
	ErrInsufficientFunds = errors.New("domain: insufficient funds")

	// ErrInvalidArgument: the calling code passed a malformed value (empty hash, zero time, bad
	// session id, ...). It is a bug of the caller, never the user's input.
	ErrInvalidArgument = errors.New("domain: invalid argument")
	// ErrNotRegistered: a history that does not start with UserRegistered, or a second
	// UserRegistered in one history.
	ErrNotRegistered = errors.New("domain: history does not start with UserRegistered")
)
