package commands

import (
	"context"

	"github.com/idlog/idlog/auth"
	"github.com/idlog/idlog/domain"
)

// DisableOTP turns two-factor authentication off with a current code; the secret is forgotten.
type DisableOTP struct {
	Meta
	UID  domain.UserID
	Code string
}

// DisableOTPHandler handles DisableOTP.
type DisableOTPHandler struct {
	users  *UserStreams
	sealer *auth.Sealer
}

// NewDisableOTPHandler returns the handler.
func NewDisableOTPHandler(users *UserStreams, sealer *auth.Sealer) DisableOTPHandler {
	if users == nil || sealer == nil {
		panic("commands: NewDisableOTPHandler needs users and a sealer")
	}
	return DisableOTPHandler{users: users, sealer: sealer}
}

// Handle disables two-factor authentication. Errors: domain.ErrOTPNotEnabled,
// auth.ErrOTPCodeInvalid, domain.ErrOTPReplayed.
func (h DisableOTPHandler) Handle(ctx context.Context, cmd DisableOTP) (Result, error) {
	o, err := h.users.update(ctx, cmd.UID, "DisableOTP", cmd.Meta, func(u *domain.User) (change, error) {
		if !u.OTPEnabled() {
			return change{}, domain.ErrOTPNotEnabled
		}
		step, err := otpStep(h.sealer, u, cmd.Code, h.users.now())
		if err != nil {
			return change{}, err
		}
		events, err := u.DisableOTP(step)
		return change{events: events}.withNotice(u, NoticeOTPDisabled, "", h.users.now(), nil), err
	})
	if err != nil {
		return Result{}, err
	}
	return resultOf(o), nil
}
