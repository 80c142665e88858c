package commands

import (
	"context"
	"runtime"
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

// spinTail is the end of a pad that sleep waits out by yielding rather than with a timer. Go's
// timers wake on the network poller's whole milliseconds when nothing else is due: a wait of
// 0.1 to 0.8 ms lasts 1.1 ms, one of 1.5 ms 2.2 ms (measured here). A pad of a failure's
// recording (0.7 ms) slept on a timer lasted 1.1 ms, and an unknown login answered 0.4 ms later
// than a wrong password, in every run; no estimate of the lateness can correct it, since the
// lateness depends on where in its millisecond the wait ends.
const spinTail = 1500 * time.Microsecond

// sleep waits until d has passed, or ctx ends: on a timer until the last spinTail at most, then
// yielding to other goroutines (runtime.Gosched) until the deadline. The yielding costs CPU
// (at most spinTail a call) only where no other goroutine wants it.
func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	deadline := time.Now().Add(d)
	if coarse := d - spinTail; coarse > 0 {
		t := time.NewTimer(coarse)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
	for time.Now().Before(deadline) && ctx.Err() == nil {
		runtime.Gosched()
	}
}

// padSilence makes a request that found nothing to do last about as long as one that appended,
// so its duration does not tell whether an address is registered.
func padSilence(ctx context.Context, pad *latency, start time.Time) {
	sleep(ctx, pad.get()-time.Since(start))
}
