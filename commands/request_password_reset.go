package commands

import (
	"context"
	"time"

	"github.com/idlog/idlog/domain"
)

// RequestPasswordReset sends a password reset token to Email if an active user holds it. The
// outcome is the same otherwise, so the command cannot tell anyone whether an address is
// registered.
type RequestPasswordReset struct {
	Meta
	Email string
}

// RequestPasswordResetHandler handles RequestPasswordReset.
type RequestPasswordResetHandler struct {
	users *UserStreams
	codes codeSender
	ttl   time.Duration
	pad   *latency
	caps  codeLimits
}

// NewRequestPasswordResetHandler returns the handler.
func NewRequestPasswordResetHandler(users *UserStreams, notifier Notifier, codes CodesConfig) RequestPasswordResetHandler {
	if users == nil || notifier == nil {
		panic("commands: NewRequestPasswordResetHandler needs users and a notifier")
	}
	codes = codes.withDefaults()
	return RequestPasswordResetHandler{users: users, codes: newCodeSender(users, notifier, codes), ttl: codes.ResetTokenTTL, pad: &latency{}}
}

// Handle requests the token. A malformed address is domain.ErrEmailInvalid; an unknown or
// inactive one is not an error and appends nothing. The result is always empty.
func (h RequestPasswordResetHandler) Handle(ctx context.Context, cmd RequestPasswordReset) (Result, error) {
	return requestToken(ctx, h.users, h.codes, h.pad, tokenRequest{
		command: "RequestPasswordReset", meta: cmd.Meta, email: cmd.Email, kind: NotifyPasswordReset, ttl: h.ttl,
		eligible: func(u *domain.User) bool { return u.IsActive() },
		limits:   h.caps,
		record:   (*domain.User).RequestPasswordReset,
	})
}

// limitedBy returns the handler with code requests capped.
func (h RequestPasswordResetHandler) limitedBy(c codeLimits) RequestPasswordResetHandler {
	h.caps = c
	return h
}
