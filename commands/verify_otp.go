package commands

import (
	"context"

	"github.com/idlog/idlog/auth"
	"github.com/idlog/idlog/domain"
)

// VerifyOTP checks a signed-in user's code before a sensitive action, and spends it.
type VerifyOTP struct {
	Meta
	UID  domain.UserID
	Code string
}

// VerifyOTPHandler handles VerifyOTP.
type VerifyOTPHandler struct {
	users  *UserStreams
	sealer *auth.Sealer
}

// NewVerifyOTPHandler returns the handler.
func NewVerifyOTPHandler(users *UserStreams, sealer *auth.Sealer) VerifyOTPHandler {
	if users == nil || sealer == nil {
		panic("commands: NewVerifyOTPHandler needs users and a sealer")
	}
	return VerifyOTPHandler{users: users, sealer: sealer}
}

// Handle verifies the code. Errors: domain.ErrOTPNotEnabled, auth.ErrOTPCodeInvalid,
// domain.ErrOTPReplayed.
func (h VerifyOTPHandler) Handle(ctx context.Context, cmd VerifyOTP) (Result, error) {
	o, err := h.users.update(ctx, cmd.UID, "VerifyOTP", cmd.Meta, func(u *domain.User) (change, error) {
		if !u.OTPEnabled() {
			return change{}, domain.ErrOTPNotEnabled
		}
		step, err := otpStep(h.sealer, u, cmd.Code, h.users.now())
		if err != nil {
			return change{}, err
		}
		events, err := u.VerifyOTP(step)
		return change{events: events}, err
	})
	if err != nil {
		return Result{}, err
	}
	return resultOf(o), nil
}
