package commands

import (
	"context"
	"time"

	"github.com/idlog/idlog/attempts"
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
	limits codeLimits
}

// codeLimits caps code requests per address asked for and per client address. The zero value
// caps nothing (a handler built without New).
type codeLimits struct {
	limiter AttemptLimiter
	limits  LimitsConfig
}

// refused counts a request for a code to email from ip, and reports whether one of its counters
// refused it.
func (c codeLimits) refused(ctx context.Context, now time.Time, email, ip string) (bool, error) {
	if c.limiter == nil {
		return false, nil
	}
	counters := []attempts.Counter{{Kind: kindCodeRequest, Key: "code-account:" + email, Policy: c.limits.CodeAccount}}
	if ip != "" {
		counters = append(counters, attempts.Counter{Kind: kindCodeRequest, Key: "code-address:" + ip, Policy: c.limits.CodeAddress})
	}
	wait, err := c.limiter.Try(ctx, now, counters...)
	if err != nil || wait > 0 {
		return wait > 0, err
	}
	// Every request counts, whether a code goes out or not: the answer must not tell.
	return false, c.limiter.Done(ctx, now, true, counters...)
}

// requestToken sends a one-shot token to the address if an eligible user holds it. A malformed
// address is domain.ErrEmailInvalid; an unknown or ineligible one is not an error and appends
// nothing, nor does a request beyond the limits (codeLimits). Every way it lasts about as long and
// returns the same empty result, so neither the answer nor its timing tells whether an address is
// registered, or limited.
func requestToken(ctx context.Context, users *UserStreams, codes codeSender, pad *latency, r tokenRequest) (Result, error) {
	email, err := domain.NormalizeEmail(r.email)
	if err != nil {
		return Result{}, err
	}
	start := time.Now()
	refused, err := r.limits.refused(ctx, users.now(), email, r.meta.IP)
	if err != nil {
		return Result{}, err
	}
	if refused {
		padSilence(ctx, pad, start)
		return Result{}, nil
	}
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
		now := users.now()
		events, err := r.record(u, hash, now.Add(r.ttl))
		if err != nil {
			return change{}, err
		}
		token = plain
		return change{events: events}.withCode(u, r.kind, email, plain, now, now.Add(r.ttl)), nil
	})
	if err != nil {
		return Result{}, err
	}
	if o.result.LastPosition == 0 {
		padSilence(ctx, pad, start)
		return Result{}, nil
	}
	codes.send(ctx, r.kind, string(uid), email, token)
	// After the hand-off: the silent paths must last as long as all the sending path does.
	pad.observe(time.Since(start))
	// Neither the account nor the position is given: the answer, and the time the caller waits
	// for read models, must not depend on whether the address is known.
	return Result{Replayed: o.replayed}, nil
}

// timerLateness is how late timers wake: ~0.6 ms on a loaded machine, as much as a request
// that pads would otherwise last longer than the one it imitates.
var timerLateness latency

// sleep waits for about d, or until ctx ends. It asks the timer for d less the typical lateness,
// but for half of d at least: so every sleep is timed, and an estimate pushed up by a burst of
// late timers comes back down. (Asking for nothing once the estimate passed d would time no
// timer again: the estimate stayed there for good, and a padded request answered early, as
// much as the pad earlier than the one it imitates.)
func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	ask := max(d-timerLateness.get(), d/2)
	start := time.Now()
	t := time.NewTimer(ask)
	defer t.Stop()
	select {
	case <-t.C:
		timerLateness.observe(time.Since(start) - ask)
	case <-ctx.Done():
	}
}

// padSilence makes a request that found nothing to do last about as long as one that appended,
// so its duration does not tell whether an address is registered.
func padSilence(ctx context.Context, pad *latency, start time.Time) {
	sleep(ctx, pad.get()-time.Since(start))
}
