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
}

// NewRequestEmailVerificationHandler returns the handler.
func NewRequestEmailVerificationHandler(users *UserStreams, notifier Notifier, codes CodesConfig) RequestEmailVerificationHandler {
	if users == nil || notifier == nil {
		panic("commands: NewRequestEmailVerificationHandler needs users and a notifier")
	}
	codes = codes.withDefaults()
	return RequestEmailVerificationHandler{users: users, codes: codeSender{notifier, codes.logger()}, ttl: codes.EmailTokenTTL, pad: &latency{}}
}

// Handle requests the token. A malformed address is domain.ErrEmailInvalid; an unknown, verified
// or inactive one is not an error and appends nothing. The result is always empty.
func (h RequestEmailVerificationHandler) Handle(ctx context.Context, cmd RequestEmailVerification) (Result, error) {
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
	o, err := h.users.update(ctx, uid, "RequestEmailVerification", cmd.Meta, func(u *domain.User) (change, error) {
		if u.Email() != email || u.EmailVerified() || !u.IsActive() {
			return change{}, nil
		}
		plain, hash := newOneShotToken(uid)
		events, err := u.RequestEmailVerification(hash, h.users.now().Add(h.ttl))
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
	h.codes.send(ctx, NotifyEmailConfirmation, string(uid), email, token)
	// Neither the account nor the position is given: the answer, and the time the caller waits
	// for read models, must not depend on whether the address is known.
	return Result{Replayed: o.replayed}, nil
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// padSilence makes a request that found nothing to do last about as long as one that appended,
// so its duration does not tell whether an address is registered.
func padSilence(ctx context.Context, pad *latency, start time.Time) {
	sleep(ctx, pad.get()-time.Since(start))
}
