package commands

import (
	"context"

	"github.com/idlog/idlog/auth"
	"github.com/idlog/idlog/domain"
)

// GenerateOTPSecret makes a new TOTP secret for a signed-in user, to be enabled with EnableOTP.
// The secret is stored sealed; the result carries it for the authenticator app only.
type GenerateOTPSecret struct {
	Meta
	UID domain.UserID
}

// OTPSecretResult is the new secret as an otpauth:// URL and a QR code of it. Never log either.
type OTPSecretResult struct {
	Result
	URL    string
	QRCode string // PNG, standard base64
}

// GenerateOTPSecretHandler handles GenerateOTPSecret.
type GenerateOTPSecretHandler struct {
	users  *UserStreams
	sealer *auth.Sealer
}

// NewGenerateOTPSecretHandler returns the handler.
func NewGenerateOTPSecretHandler(users *UserStreams, sealer *auth.Sealer) GenerateOTPSecretHandler {
	if users == nil || sealer == nil {
		panic("commands: NewGenerateOTPSecretHandler needs users and a sealer")
	}
	return GenerateOTPSecretHandler{users: users, sealer: sealer}
}

// Handle generates the secret; with two-factor authentication on it is domain.ErrOTPAlreadyEnabled.
// A replayed command (same idempotency key) cannot show the secret again and returns no URL.
func (h GenerateOTPSecretHandler) Handle(ctx context.Context, cmd GenerateOTPSecret) (OTPSecretResult, error) {
	var key auth.TOTPKey
	o, err := h.users.update(ctx, cmd.UID, "GenerateOTPSecret", cmd.Meta, func(u *domain.User) (change, error) {
		k, err := auth.GenerateTOTP(u.Email())
		if err != nil {
			return change{}, err
		}
		events, err := u.GenerateOTPSecret(h.sealer.Seal([]byte(k.Secret), []byte(u.ID())))
		key = k
		return change{events: events}, err
	})
	if err != nil {
		return OTPSecretResult{}, err
	}
	if o.replayed {
		return OTPSecretResult{Result: resultOf(o)}, nil
	}
	return OTPSecretResult{Result: resultOf(o), URL: key.URL, QRCode: key.QRCode}, nil
}
