package commands

import (
	"context"
	"time"

	"github.com/idlog/idlog/domain"
)

// RequestEmailVerification sends a new email confirmation token to Email, if a user who still
// has to confirm it holds that address. The outcome is the same otherwise, so the command cannot
// tell anyone whether an address is registered.
type RequestEmailVerification struct {
	Meta
	Email string
}

// RequestEmailVerificationHandler handles RequestEmailVerification.
type RequestEmailVerificationHandler struct {
	users *UserStreams
	codes codeSender
	ttl   time.Duration
	pad   *latency
	caps  codeLimits
}

// NewRequestEmailVerificationHandler returns the handler.
func NewRequestEmailVerificationHandler(users *UserStreams, notifier Notifier, codes CodesConfig) RequestEmailVerificationHandler {
	if users == nil || notifier == nil {
		panic("commands: NewRequestEmailVerificationHandler needs users and a notifier")
	}
	codes = codes.withDefaults()
	return RequestEmailVerificationHandler{users: users, codes: newCodeSender(users, notifier, codes), ttl: codes.EmailTokenTTL, pad: &latency{}}
}

// Handle requests the token. A malformed address is domain.ErrEmailInvalid; an unknown, verified
// or inactive one is not an error and appends nothing. The result is always empty.
func (h RequestEmailVerificationHandler) Handle(ctx context.Context, cmd RequestEmailVerification) (Result, error) {
	return requestToken(ctx, h.users, h.codes, h.pad, tokenRequest{
		command: "RequestEmailVerification", meta: cmd.Meta, email: cmd.Email, kind: NotifyEmailConfirmation, ttl: h.ttl,
		eligible: func(u *domain.User) bool { return !u.EmailVerified() && u.IsActive() },
		limits:   h.caps,
		record:   (*domain.User).RequestEmailVerification,
	})
}

// limitedBy returns the handler with code requests capped.
func (h RequestEmailVerificationHandler) limitedBy(c codeLimits) RequestEmailVerificationHandler {
	h.caps = c
	return h
}
