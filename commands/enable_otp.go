package commands

import (
	"context"

	"github.com/idlog/idlog/auth"
	"github.com/idlog/idlog/domain"
)

// EnableOTP turns two-factor authentication on with a code of the secret GenerateOTPSecret made.
type EnableOTP struct {
	Meta
	UID  domain.UserID
	Code string
}

// EnableOTPHandler handles EnableOTP.
type EnableOTPHandler struct {
	users  *UserStreams
	sealer *auth.Sealer
}

// NewEnableOTPHandler returns the handler.
func NewEnableOTPHandler(users *UserStreams, sealer *auth.Sealer) EnableOTPHandler {
	if users == nil || sealer == nil {
		panic("commands: NewEnableOTPHandler needs users and a sealer")
	}
	return EnableOTPHandler{users: users, sealer: sealer}
}

// Handle enables two-factor authentication. Errors: domain.ErrOTPAlreadyEnabled,
// domain.ErrOTPSecretMissing, auth.ErrOTPCodeInvalid, domain.ErrOTPReplayed.
func (h EnableOTPHandler) Handle(ctx context.Context, cmd EnableOTP) (Result, error) {
	o, err := h.users.update(ctx, cmd.UID, "EnableOTP", cmd.Meta, func(u *domain.User) (change, error) {
		switch {
		case u.OTPEnabled():
			return change{}, domain.ErrOTPAlreadyEnabled
		case len(u.OTPSecret()) == 0:
			return change{}, domain.ErrOTPSecretMissing
		}
		step, err := otpStep(h.sealer, u, cmd.Code, h.users.now())
		if err != nil {
			return change{}, err
		}
		events, err := u.EnableOTP(step)
		return change{events: events}, err
	})
	if err != nil {
		return Result{}, err
	}
	return resultOf(o), nil
}
