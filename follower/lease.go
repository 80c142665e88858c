package follower

import (
	"context"
	"time"
)

// Lease gives one process at a time, across replicas, the right to run a follower. The owner
// holds it while it renews it in time; when it dies or stalls, another process acquires it with a
// higher fencing token, and the writes of the old owner, which carry the old token, are refused.
type Lease interface {
	// Acquire blocks until this process owns the follower name, or ctx ends. While it waits it
	// calls standby with the current owner, when that changes. The Hold's Context ends when the
	// ownership is lost.
	Acquire(ctx context.Context, name string, standby func(owner string)) (*Hold, error)
}

// Hold is an owned lease.
type Hold struct {
	// Context ends when the lease is lost or released; run the follower under it.
	Context context.Context
	// Token is the fencing token: higher than every earlier owner's. Writes of the follower check
	// it (see TokenFrom).
	Token int64
	// Owner names this process.
	Owner string
	// Release gives the lease up at once, so a standby need not wait for it to expire.
	Release func()
}

type tokenKey struct{}

// WithToken returns ctx carrying a fencing token, for the step's writes.
func WithToken(ctx context.Context, name string, token int64) context.Context {
	return context.WithValue(ctx, tokenKey{}, Fence{Name: name, Token: token})
}

// Fence is the lease a step's writes must check: the follower name and its token.
type Fence struct {
	Name  string
	Token int64
}

// TokenFrom returns the fence a follower runs under, if it runs under a Lease.
func TokenFrom(ctx context.Context) (Fence, bool) {
	f, ok := ctx.Value(tokenKey{}).(Fence)
	return f, ok
}

// followOwned is Run under a Lease: stand by until this process owns the follower, follow while
// it does, stand by again when the lease is lost.
func (f *Follower) followOwned(ctx context.Context) error {
	log := f.o.Logger.With("follower", f.o.Name)
	for ctx.Err() == nil {
		f.set(StateStandby, nil)
		h, err := f.o.Lease.Acquire(ctx, f.o.Name, func(owner string) {
			f.mu.Lock()
			f.owner, f.token = owner, 0
			f.mu.Unlock()
		})
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			f.failures.Add(1)
			f.set(StateFailing, err)
			log.Warn("follower: could not acquire its lease; retrying", "error", err)
			t := time.NewTimer(f.o.RetryMin)
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			t.Stop()
			continue
		}
		f.mu.Lock()
		f.owner, f.token = h.Owner, h.Token
		f.mu.Unlock()
		log.Info("follower: this process owns the follower now", "owner", h.Owner, "token", h.Token)
		err = f.follow(WithToken(h.Context, f.o.Name, h.Token))
		h.Release()
		if err != nil {
			return err
		}
		if ctx.Err() == nil {
			log.Warn("follower: lease lost; standing by", "owner", h.Owner, "token", h.Token)
		}
	}
	return nil
}
