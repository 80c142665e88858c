package commands

import (
	"context"

	"github.com/idlog/idlog/domain"
)

// ResetUserOTP is an administrator turning a user's two-factor authentication off without a code:
// the support case of a user who lost their authenticator. The secret is forgotten; the user can
// set up a new one once signed in.
type ResetUserOTP struct {
	Meta
	UID domain.UserID
}

// ResetUserOTPHandler handles ResetUserOTP.
type ResetUserOTPHandler struct{ users *UserStreams }

// NewResetUserOTPHandler returns the handler.
func NewResetUserOTPHandler(users *UserStreams) ResetUserOTPHandler {
	if users == nil {
		panic("commands: NewResetUserOTPHandler needs users")
	}
	return ResetUserOTPHandler{users: users}
}

// Handle turns two-factor authentication off. Errors: ErrNotPermitted, ErrUserNotFound,
// domain.ErrOTPNotEnabled, domain.ErrAccountClosed.
func (h ResetUserOTPHandler) Handle(ctx context.Context, cmd ResetUserOTP) (Result, error) {
	if err := authorize(cmd.Meta, AbilityResetUserOTP); err != nil {
		return Result{}, err
	}
	o, err := h.users.update(ctx, cmd.UID, "ResetUserOTP", cmd.Meta, func(u *domain.User) (change, error) {
		if err := authorizeOn(cmd.Meta, AbilityResetUserOTP, u); err != nil {
			return change{}, err
		}
		events, err := u.ResetOTP()
		return change{events: events}, err
	})
	if err == nil {
		err = replayedOn(o, cmd.UID)
	}
	if err != nil {
		return Result{}, err
	}
	return resultOf(o), nil
}
