package idempotency

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// ErrKeyReused: the claim is held by a request with another fingerprint (the same key sent with
// another body, path or query).
var ErrKeyReused = errors.New("idempotency: key reused for another request")

// Defaults of Options.
const (
	DefaultRetention = 24 * time.Hour
	DefaultLease     = time.Minute
	DefaultPoll      = 200 * time.Millisecond
)

// Options configure a Keeper.
type Options struct {
	// Store keeps the claims. Required.
	Store Store
	// Retention is how long an answer is kept and replayed. 0 means DefaultRetention.
	Retention time.Duration
	// Lease is how long a running first request holds its claim before a retry may take it
	// over (its process died): longer than any request runs. 0 means DefaultLease.
	Lease time.Duration
	// Poll bounds how long a retry waiting for a first request in another process sleeps
	// between looks. 0 means DefaultPoll.
	Poll time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives sweep failures. Nil discards them.
	Logger *slog.Logger
}

// Keeper runs each claim once and hands its answer to every retry. It is safe for concurrent use.
type Keeper struct {
	o Options

	mu      sync.Mutex
	running map[string]chan struct{} // claims this process runs; closed when they end

	lastSweep atomic.Int64 // unix nanoseconds
	sweeping  atomic.Bool
}

// NewKeeper returns a Keeper. A nil Store is a wiring mistake and panics; bad durations are errors
// naming the value.
func NewKeeper(o Options) (*Keeper, error) {
	if o.Store == nil {
		panic("idempotency: NewKeeper needs a Store")
	}
	for name, d := range map[string]time.Duration{"retention": o.Retention, "lease": o.Lease, "poll": o.Poll} {
		if d < 0 {
			return nil, fmt.Errorf("idempotency: %s (%v) cannot be negative", name, d)
		}
	}
	if o.Retention == 0 {
		o.Retention = DefaultRetention
	}
	if o.Lease == 0 {
		o.Lease = DefaultLease
	}
	if o.Poll == 0 {
		o.Poll = DefaultPoll
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	k := &Keeper{o: o, running: map[string]chan struct{}{}}
	k.lastSweep.Store(o.Now().UnixNano())
	return k, nil
}

// Retention is how long answers are kept.
func (k *Keeper) Retention() time.Duration { return k.o.Retention }

// Claim is a claim this request took: it must Complete or Release it.
type Claim struct {
	k     *Keeper
	id    string
	owner string
	done  chan struct{}
	once  sync.Once
}

// Begin takes the claim id for a request with fingerprint fp, or returns the answer of the
// request that took it first, waiting while that one runs. It fails with ErrKeyReused when the
// claim's fingerprint is another, and with ctx's error when ctx ends while it waits.
func (k *Keeper) Begin(ctx context.Context, id string, fp []byte) (*Claim, []byte, error) {
	k.maybeSweep()
	var raw [16]byte
	rand.Read(raw[:]) // never fails (crypto/rand, Go 1.24+)
	owner := hex.EncodeToString(raw[:])
	wait := 5 * time.Millisecond
	for {
		// Register first, so that a retry in this process waits on the channel rather than polls.
		k.mu.Lock()
		local, busy := k.running[id]
		var done chan struct{}
		if !busy {
			done = make(chan struct{})
			k.running[id] = done
		}
		k.mu.Unlock()

		if !busy {
			now := k.o.Now()
			taken, held, err := k.o.Store.Claim(ctx, id, fp, owner, now.Add(k.o.Lease), now)
			if err == nil && taken {
				return &Claim{k: k, id: id, owner: owner, done: done}, nil, nil
			}
			k.forget(id, done)
			if err != nil {
				return nil, nil, err
			}
			if !hmac.Equal(held.Fingerprint, fp) {
				return nil, nil, ErrKeyReused
			}
			if held.Answer != nil {
				return nil, held.Answer, nil
			}
			// Another process runs it: look again a little later.
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, nil, ctx.Err()
			case <-t.C:
			}
			wait = min(wait*2, k.o.Poll)
			continue
		}
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-local:
		}
	}
}

func (k *Keeper) forget(id string, done chan struct{}) {
	k.mu.Lock()
	if k.running[id] == done {
		delete(k.running, id)
	}
	k.mu.Unlock()
	close(done)
}

// Complete keeps answer for the retention, so every retry gets it. The claim is over either way.
func (c *Claim) Complete(ctx context.Context, answer []byte) error {
	err := c.k.o.Store.Complete(ctx, c.id, c.owner, answer, c.k.o.Now().Add(c.k.o.Retention))
	c.end()
	return err
}

// Release frees the claim without an answer (the request failed): the next request with it runs.
func (c *Claim) Release(ctx context.Context) error {
	err := c.k.o.Store.Release(ctx, c.id, c.owner)
	c.end()
	return err
}

func (c *Claim) end() { c.once.Do(func() { c.k.forget(c.id, c.done) }) }

// sweepEvery is how often a Keeper forgets expired claims: answers live a little longer than the
// retention, never less.
func (k *Keeper) sweepEvery() time.Duration {
	return min(max(k.o.Retention/10, time.Second), 10*time.Minute)
}

// maybeSweep starts a sweep in the background when the last one is old enough. Replicas each
// sweep; deleting what another already deleted is harmless.
func (k *Keeper) maybeSweep() {
	now := k.o.Now()
	if now.Sub(time.Unix(0, k.lastSweep.Load())) < k.sweepEvery() || !k.sweeping.CompareAndSwap(false, true) {
		return
	}
	k.lastSweep.Store(now.UnixNano())
	go func() {
		defer k.sweeping.Store(false)
		if _, err := k.Sweep(context.Background()); err != nil {
			k.o.Logger.Warn("sweeping expired idempotency answers failed", slog.Any("error", err))
		}
	}()
}

// Sweep forgets every claim and answer whose time is over, and says how many.
func (k *Keeper) Sweep(ctx context.Context) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	return k.o.Store.Sweep(ctx, k.o.Now())
}
