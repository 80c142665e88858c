package commands

import (
	"sync"
	"sync/atomic"
	"time"
)

// addressThrottle counts failed sign-ins per client address in fixed windows: once an address
// reaches max failures in a window, its sign-ins are refused until the window ends. It lives in
// memory, per process: behind several servers each counts on its own.
type addressThrottle struct {
	max    int
	window time.Duration
	limit  int // entries kept before expired ones are swept

	mu      sync.Mutex
	entries map[string]*addressWindow
}

type addressWindow struct {
	start    time.Time
	failures int
}

// maxThrottledAddresses bounds the memory of the address throttle under a spray of addresses:
// beyond it the oldest windows are swept even if not expired.
const maxThrottledAddresses = 100000

func newAddressThrottle(max int, window time.Duration) *addressThrottle {
	return &addressThrottle{max: max, window: window, limit: 1024, entries: map[string]*addressWindow{}}
}

// blocked returns how long the address must wait, 0 if it may sign in.
func (t *addressThrottle) blocked(addr string, now time.Time) time.Duration {
	if t == nil || addr == "" || t.max <= 0 {
		return 0
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	w, ok := t.entries[addr]
	if !ok || !now.Before(w.start.Add(t.window)) || w.failures < t.max {
		return 0
	}
	return w.start.Add(t.window).Sub(now)
}

// fail counts a failed sign-in from the address.
func (t *addressThrottle) fail(addr string, now time.Time) {
	if t == nil || addr == "" || t.max <= 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	w, ok := t.entries[addr]
	if !ok || !now.Before(w.start.Add(t.window)) {
		if !ok && len(t.entries) >= t.limit {
			t.sweep(now)
		}
		t.entries[addr] = &addressWindow{start: now, failures: 1}
		return
	}
	w.failures++
}

// sweep forgets expired windows; past maxThrottledAddresses it forgets the oldest half too.
func (t *addressThrottle) sweep(now time.Time) {
	for a, w := range t.entries {
		if !now.Before(w.start.Add(t.window)) {
			delete(t.entries, a)
		}
	}
	if len(t.entries) >= maxThrottledAddresses {
		cut := now.Add(-t.window / 2)
		for a, w := range t.entries {
			if w.start.Before(cut) {
				delete(t.entries, a)
			}
		}
	}
	t.limit = max(1024, 2*len(t.entries))
}

// latency tracks the median of a duration that varies (a write that waits for fsync now and
// then): each sample moves the estimate 1/16 of the way up or down. A median, not a mean: a rare
// slow write must not make every padded answer slower than the typical one it imitates. Sign-in
// failures of unknown logins wait as long as recording a failure of a known one takes.
type latency struct{ ns atomic.Int64 }

func (l *latency) observe(d time.Duration) {
	for {
		old := l.ns.Load()
		next := old
		switch {
		case old == 0:
			next = int64(d)
		case int64(d) > old:
			next = old + max(old/16, 1)
		case int64(d) < old:
			next = old - max(old/16, 1)
		}
		if l.ns.CompareAndSwap(old, next) {
			return
		}
	}
}

func (l *latency) get() time.Duration { return time.Duration(l.ns.Load()) }
