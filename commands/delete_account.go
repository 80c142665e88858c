package commands

import (
	"context"

	"github.com/idlog/idlog/auth"
	"github.com/idlog/idlog/domain"
)

// DeleteAccount is a signed-in user closing their own account, with their password and, when
// two-factor authentication is on, a code. Every session ends. The email and username stay
// claimed: an administrator can bring the account back.
type DeleteAccount struct {
	Meta
	UID      domain.UserID
	Password string
	OTPCode  string
}

// DeleteAccountHandler handles DeleteAccount.
type DeleteAccountHandler struct {
	users  *UserStreams
	hasher *auth.PasswordHasher
	sealer *auth.Sealer
}

// NewDeleteAccountHandler returns the handler.
func NewDeleteAccountHandler(users *UserStreams, hasher *auth.PasswordHasher, sealer *auth.Sealer) DeleteAccountHandler {
	if users == nil || hasher == nil || sealer == nil {
		panic("commands: NewDeleteAccountHandler needs users, a password hasher and a sealer")
	}
	return DeleteAccountHandler{users: users, hasher: hasher, sealer: sealer}
}

// Handle deletes the account. Errors: ErrWrongPassword, domain.ErrOTPRequired,
// auth.ErrOTPCodeInvalid, domain.ErrOTPReplayed.
func (h DeleteAccountHandler) Handle(ctx context.Context, cmd DeleteAccount) (Result, error) {
	proof := &passwordProof{hasher: h.hasher, password: cmd.Password}
	o, err := h.users.update(ctx, cmd.UID, "DeleteAccount", cmd.Meta, func(u *domain.User) (change, error) {
		if err := proof.check(u, ErrWrongPassword); err != nil {
			return change{}, err
		}
		now := h.users.now()
		var events []domain.Event
		if u.OTPEnabled() {
			if cmd.OTPCode == "" {
				return change{}, domain.ErrOTPRequired
			}
			step, err := otpStep(h.sealer, u, cmd.OTPCode, now)
			if err != nil {
				return change{}, err
			}
			// Recorded first, so the code cannot serve again once the account is restored.
			if events, err = u.VerifyOTP(step); err != nil {
				return change{}, err
			}
		}
		more, err := u.Delete(now)
		return change{events: append(events, more...)}, err
	})
	if err != nil {
		return Result{}, err
	}
	return resultOf(o), nil
}
