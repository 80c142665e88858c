package commands

import (
	"fmt"
	"strings"
	"time"

	"github.com/idlog/idlog/auth"
	"github.com/idlog/idlog/domain"
)

// passwordProof verifies a password against a user's current hash, once per hash: a command that
// decides again after a concurrent change hashes again only if the password changed meanwhile.
type passwordProof struct {
	hasher    *auth.PasswordHasher
	password  string
	provenFor string
}

// check returns nil if the password matches u's, else wrong (or ErrMissingPassword).
func (p *passwordProof) check(u *domain.User, wrong error) error {
	if p.password == "" {
		return ErrMissingPassword
	}
	h := u.PasswordHash()
	if p.provenFor != "" && h == p.provenFor {
		return nil
	}
	ok, err := p.hasher.Verify(p.password, h)
	if err != nil {
		return fmt.Errorf("commands: verify the password of %s: %w", u.ID(), err)
	}
	if !ok {
		return wrong
	}
	p.provenFor = h
	return nil
}

// rehashed upgrades u's hash when it was made with lower argon2 costs than the hasher's, once
// password has been proven against it: the only moment idlog holds the password. A hash that
// cannot be upgraded is kept; the sign-in does not fail for it.
func rehashed(h *auth.PasswordHasher, u *domain.User, password string) []domain.Event {
	if !h.Outdated(u.PasswordHash()) {
		return nil
	}
	events, err := u.RehashPassword(h.Hash(password))
	if err != nil {
		return nil
	}
	return events
}

// checkNewPassword applies the password rules (auth.CheckPassword) and the confirmation.
func checkNewPassword(password, confirm string) error {
	if password == "" {
		return ErrMissingPassword
	}
	if password != confirm {
		return ErrPasswordMismatch
	}
	return auth.CheckPassword(password)
}

// maxOneShotToken bounds a presented token before it is parsed or hashed.
const maxOneShotToken = 128

// newOneShotToken makes an email or password-reset token. It starts with the user id, so that
// confirming needs nothing but the token; the rest is 256 random bits. Only the hash is stored.
func newOneShotToken(uid domain.UserID) (plain, hash string) {
	random, _ := auth.NewToken()
	plain = string(uid) + "." + random
	return plain, auth.HashToken(plain)
}

// parseOneShotToken finds the user a token was made for, and the hash to check it with.
func parseOneShotToken(plain string) (domain.UserID, string, error) {
	if len(plain) > maxOneShotToken {
		return "", "", fmt.Errorf("%w: token longer than %d bytes", domain.ErrTokenInvalid, maxOneShotToken)
	}
	head, rest, ok := strings.Cut(plain, ".")
	uid, err := domain.ParseUserID(head)
	if !ok || err != nil || rest == "" {
		return "", "", fmt.Errorf("%w: malformed token", domain.ErrTokenInvalid)
	}
	return uid, auth.HashToken(plain), nil
}

// otpStep validates a TOTP code against the user's secret (sealed with the user id as
// additional data) and returns its time step, for the domain to refuse replays.
func otpStep(sealer *auth.Sealer, u *domain.User, code string, now time.Time) (int64, error) {
	secret, err := sealer.Open(u.OTPSecret(), []byte(u.ID()))
	if err != nil {
		return 0, fmt.Errorf("commands: open the two-factor secret of %s: %w", u.ID(), err)
	}
	return auth.ValidateTOTP(string(secret), code, now)
}

// level is the account level an access token carries: the one the user's private labels grant
// (email=verified gives 1, as in Barong; see domain.Levels).
func level(u *domain.User) int { return u.Level() }
