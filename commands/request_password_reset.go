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
}

// NewRequestPasswordResetHandler returns the handler.
func NewRequestPasswordResetHandler(users *UserStreams, notifier Notifier, codes CodesConfig) RequestPasswordResetHandler {
	if users == nil || notifier == nil {
		panic("commands: NewRequestPasswordResetHandler needs users and a notifier")
	}
	codes = codes.withDefaults()
	return RequestPasswordResetHandler{users: users, codes: codeSender{notifier, codes.logger()}, ttl: codes.ResetTokenTTL, pad: &latency{}}
}

// Handle requests the token. A malformed address is domain.ErrEmailInvalid; an unknown or
// inactive one is not an error and appends nothing. The result is always empty.
func (h RequestPasswordResetHandler) Handle(ctx context.Context, cmd RequestPasswordReset) (Result, error) {
	email, err := domain.NormalizeEmail(cmd.Email)
	if err != nil {
		return Result{}, err
	}
	start := time.Now()
	uid, ok, err := h.users.owner(ctx, emailKey(email))
	if err != nil {
		return Result{}, err
	}
	if !ok {
		padSilence(ctx, h.pad, start)
		return Result{}, nil
	}
	var token string
	o, err := h.users.update(ctx, uid, "RequestPasswordReset", cmd.Meta, func(u *domain.User) (change, error) {
		if u.Email() != email || !u.IsActive() {
			return change{}, nil
		}
		plain, hash := newOneShotToken(uid)
		events, err := u.RequestPasswordReset(hash, h.users.now().Add(h.ttl))
		if err != nil {
			return change{}, err
		}
		token = plain
		return change{events: events}, nil
	})
	if err != nil {
		return Result{}, err
	}
	if o.result.LastPosition == 0 {
		padSilence(ctx, h.pad, start)
		return Result{}, nil
	}
	h.pad.observe(time.Since(start))
	h.codes.send(ctx, NotifyPasswordReset, string(uid), email, token)
	return Result{Replayed: o.replayed}, nil
}
