package commands

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// latency tracks the median of a duration that varies (a write that waits for fsync now and
// then): the median of its last latencyWindow samples. A median, not a mean: a rare slow write
// must not make every padded answer slower than the typical one it imitates. Sign-in failures of
// unknown logins wait as long as recording a failure of a known one takes.
//
// A window, not an estimate that each sample moves a step (1/16) up or down, as before: the first
// sample set that estimate, and a first failure recorded with cold caches (tens of milliseconds)
// made every unknown login wait that long until some sixty failures of known users had brought it
// down, which on a quiet server could take days: a timing oracle for "this login exists".
type latency struct {
	mu      sync.Mutex
	samples [latencyWindow]time.Duration
	n, next int
	median  atomic.Int64
}

// latencyWindow is how many of the last samples a latency keeps.
const latencyWindow = 31

func (l *latency) observe(d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.samples[l.next] = d
	l.next = (l.next + 1) % latencyWindow
	l.n = min(l.n+1, latencyWindow)
	var buf [latencyWindow]time.Duration
	sorted := buf[:l.n]
	copy(sorted, l.samples[:l.n])
	slices.Sort(sorted)
	// The lower median: of a cold first sample and a typical second, the typical one.
	l.median.Store(int64(sorted[(l.n-1)/2]))
}

func (l *latency) get() time.Duration { return time.Duration(l.median.Load()) }
