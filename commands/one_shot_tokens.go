package commands

import (
	"context"
	"time"

	"github.com/idlog/idlog/domain"
)

// tokenRequest is what the two "send me a one-shot token" commands (email confirmation, password
// reset) differ in; requestToken does the rest for both.
type tokenRequest struct {
	command string
	meta    Meta
	email   string
	kind    string // the notification kind
	ttl     time.Duration
	// eligible says whether the user holding the address gets a token at all.
	eligible func(u *domain.User) bool
	// record records the request of a token with this hash and expiry.
	record func(u *domain.User, hash string, expiresAt time.Time) ([]domain.Event, error)
}

// requestToken sends a one-shot token to the address if an eligible user holds it. A malformed
// address is domain.ErrEmailInvalid; an unknown or ineligible one is not an error and appends
// nothing. Either way it lasts about as long and returns the same empty result, so neither the
// answer nor its timing tells whether an address is registered.
func requestToken(ctx context.Context, users *UserStreams, codes codeSender, pad *latency, r tokenRequest) (Result, error) {
	email, err := domain.NormalizeEmail(r.email)
	if err != nil {
		return Result{}, err
	}
	start := time.Now()
	uid, ok, err := users.owner(ctx, emailKey(email))
	if err != nil {
		return Result{}, err
	}
	if !ok {
		padSilence(ctx, pad, start)
		return Result{}, nil
	}
	var token string
	o, err := users.update(ctx, uid, r.command, r.meta, func(u *domain.User) (change, error) {
		if u.Email() != email || !r.eligible(u) {
			return change{}, nil
		}
		plain, hash := newOneShotToken(uid)
		events, err := r.record(u, hash, users.now().Add(r.ttl))
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
		padSilence(ctx, pad, start)
		return Result{}, nil
	}
	pad.observe(time.Since(start))
	codes.send(ctx, r.kind, string(uid), email, token)
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
