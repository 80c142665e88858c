package commands

import (
	"encoding/json"

	"github.com/idlog/idlog/domain"
)

// Account is a user as a command left it: enough for an answer when the read models are late.
type Account struct {
	UID           string
	Email         string
	Username      string
	Role          string
	State         string
	EmailVerified bool
	OTP           bool
	Data          json.RawMessage
	Level         int
	Labels        []domain.Label
	Wallet        domain.Wallet
}

func accountOf(u *domain.User) Account {
	return Account{
		UID: string(u.ID()), Email: u.Email(), Username: u.Username(), Role: u.Role().String(),
		State: u.State().String(), EmailVerified: u.EmailVerified(), OTP: u.OTPEnabled(), Data: u.Data(),
		Level: u.Level(), Labels: u.Labels(), Wallet: u.Wallet(),
	}
}

// Result is what a command did.
type Result struct {
	// Account is the user after the command (its current state when the command was replayed).
	// It is the zero Account when the command touched no known user (a code requested for an
	// unknown address).
	Account Account
	// Position is the global position of the last event appended: read models that reached it
	// show the change. 0 when nothing was appended.
	Position uint64
	// Replayed: the idempotency key was used before, so nothing was appended now.
	Replayed bool
}

func resultOf(o outcome) Result {
	r := Result{Position: o.result.LastPosition, Replayed: o.replayed}
	if o.user != nil {
		r.Account = accountOf(o.user)
	}
	return r
}
