package commands

import (
	"sync/atomic"
	"time"
)

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
