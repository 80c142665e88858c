package commands

import (
	"fmt"

	"github.com/idlog/idlog/domain"
)

// DefaultSignupBonus is how many free coins a new user gets when WalletConfig does not say.
const DefaultSignupBonus = 100

// NoSignupBonus, as WalletConfig.SignupBonus, grants new users no coin.
const NoSignupBonus = -1

// WalletConfig tunes the wallet. The zero value takes the defaults.
type WalletConfig struct {
	// SignupBonus is how many free coins a new user is credited at sign-up. 0 means
	// DefaultSignupBonus; NoSignupBonus grants none.
	SignupBonus int64
}

func (c WalletConfig) validate() error {
	if c.SignupBonus < NoSignupBonus || c.SignupBonus > domain.MaxCoins {
		return fmt.Errorf("commands: sign-up bonus (%d) must be between 0 and %d coins, or NoSignupBonus", c.SignupBonus, int64(domain.MaxCoins))
	}
	return nil
}

func (c WalletConfig) signupBonus() int64 {
	switch c.SignupBonus {
	case 0:
		return DefaultSignupBonus
	case NoSignupBonus:
		return 0
	}
	return c.SignupBonus
}

// replayedOn checks that a replayed command (its idempotency key was used before) was used on the
// same user: a key, scoped to the actor, that an administrator reuses for another user is refused
// rather than answered with the first user's state.
func replayedOn(o outcome, uid domain.UserID) error {
	if o.replayed && o.user != nil && o.user.ID() != uid {
		return fmt.Errorf("%w: the key was used on another user", ErrIdempotencyKeyReused)
	}
	return nil
}
