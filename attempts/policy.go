// Package attempts limits attempts at secrets (passwords, two-factor codes, one-shot tokens) and
// requests for codes, with counters in the event store's database, so every replica on that
// database shares one count.
//
// A counter allows Policy.Free attempts; from then on each one must wait after the last, Delay at
// first, doubling with every further failure up to MaxDelay (progressive delay, not a lockout: a
// counter is never closed for longer than MaxDelay). A counter left alone for Forget starts again
// from zero. Try counts an attempt before the secret is checked, so a burst of parallel guesses
// cannot all pass a count that none of them has raised yet; Done gives the attempt back when the
// secret was right or never checked.
package attempts

import (
	"fmt"
	"time"
)

// Policy is how many attempts a counter allows and how it slows the next ones.
type Policy struct {
	// Free attempts are allowed without any wait; 0 makes even the first wait (a request limit
	// that starts at once is not useful, so use at least 1).
	Free int
	// Delay is the wait after the attempt that used the last free one; it doubles with each
	// further attempt, up to MaxDelay.
	Delay    time.Duration
	MaxDelay time.Duration
	// Forget is how long a counter must be left alone to start again from zero.
	Forget time.Duration
}

// Validate returns an error naming the bad value.
func (p Policy) Validate() error {
	switch {
	case p.Free < 0:
		return fmt.Errorf("attempts: free attempts (%d) cannot be negative", p.Free)
	case p.Delay <= 0:
		return fmt.Errorf("attempts: delay (%v) must be positive", p.Delay)
	case p.MaxDelay < p.Delay:
		return fmt.Errorf("attempts: max delay (%v) cannot be below the delay (%v)", p.MaxDelay, p.Delay)
	case p.Forget < p.MaxDelay:
		return fmt.Errorf("attempts: forget (%v) cannot be below the max delay (%v)", p.Forget, p.MaxDelay)
	}
	return nil
}

// Wait is how long after the last of n counted attempts the next one must wait.
func (p Policy) Wait(n int64) time.Duration {
	if n < int64(p.Free) || n <= 0 {
		return 0
	}
	d := p.Delay
	for i := int64(p.Free); i < n && d < p.MaxDelay; i++ {
		d *= 2
	}
	return min(d, p.MaxDelay)
}

// Counter is one count of attempts: Key names what is counted (a login, an address, a user, or a
// pair of them) and Kind, which secret, for metrics and logs ("password", "otp", "token", ...).
type Counter struct {
	Kind   string
	Key    string
	Policy Policy
}
