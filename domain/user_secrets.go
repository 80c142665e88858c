package domain

import (
	"fmt"
	"time"
)

// Secret names a secret a signed-in user re-enters to confirm an action.
type Secret string

// The secrets of SecretCheckFailed.
const (
	SecretPassword Secret = "password"
	SecretOTP      Secret = "otp"
	// SecretPhoneCode: the code sent to a phone being verified.
	SecretPhoneCode Secret = "phone_code"
)

func (s Secret) valid() bool { return s == SecretPassword || s == SecretOTP || s == SecretPhoneCode }

// SecretCheckFailed: a secret given to confirm Action (a command, such as "DisableOTP") was wrong.
// Failed sign-ins are LoginFailed. Recorded so the owner sees guesses in the activity log; the
// attempt limiter, not this event, slows them.
type SecretCheckFailed struct {
	Secret Secret    `json:"secret"`
	Action string    `json:"action"`
	At     time.Time `json:"at"`
}

// EventType implements Event.
func (SecretCheckFailed) EventType() string { return "SecretCheckFailed" }

// maxActionName bounds SecretCheckFailed.Action.
const maxActionName = 64

// FailSecretCheck records that secret, given to confirm action, was wrong. It works in any state.
func (u *User) FailSecretCheck(secret Secret, action string, at time.Time) ([]Event, error) {
	if !secret.valid() {
		return nil, fmt.Errorf("%w: secret %q", ErrInvalidArgument, secret)
	}
	if action == "" || len(action) > maxActionName {
		return nil, fmt.Errorf("%w: action of %d bytes", ErrInvalidArgument, len(action))
	}
	if err := checkTime("at", at); err != nil {
		return nil, err
	}
	return u.record(SecretCheckFailed{Secret: secret, Action: action, At: at.UTC()}), nil
}
