package commands

import (
	"context"
	"slices"
	"testing"
	"time"
)

// A pad lasts its length, not the timer's next millisecond. Go's timers wake on the poller's
// whole milliseconds: slept on a timer, a pad of 0.8 ms (a failure's recording) lasted 1.1 ms, so
// an unknown login answered later than a wrong password in every run. A sleep is never shorter
// than asked; the median of 11 sleeps of 0.8 ms must stay under 1 ms in one of 5 tries (a loaded
// machine may delay the yielding; a timer alone never wakes before 1 ms).
func TestSleepLastsItsPad(t *testing.T) {
	for _, d := range []time.Duration{300 * time.Microsecond, 800 * time.Microsecond, 1700 * time.Microsecond, 2500 * time.Microsecond} {
		start := time.Now()
		sleep(context.Background(), d)
		if took := time.Since(start); took < d {
			t.Errorf("sleep(%v) returned after %v", d, took)
		}
	}
	const d = 800 * time.Microsecond
	var medians []time.Duration
	for range 5 {
		var took []time.Duration
		for range 11 {
			start := time.Now()
			sleep(context.Background(), d)
			took = append(took, time.Since(start))
		}
		slices.Sort(took)
		if took[5] < time.Millisecond {
			return
		}
		medians = append(medians, took[5])
	}
	t.Errorf("sleeps of %v took %v (medians of 11, 5 tries): the timer's millisecond, not the pad", d, medians)
}

// A cancelled sleep ends at once.
func TestSleepEndsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	sleep(ctx, time.Minute)
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("a cancelled sleep of a minute took %v", took)
	}
}

// A first sample taken cold does not set the padding for long: two typical samples outvote it,
// and a burst of slow ones short of half the window does not move the median. Before, each sample
// moved the estimate 1/16 of the way, and after a cold first failure of 50 ms unknown logins
// waited 44 ms where a wrong password took 1.
func TestLatencyForgetsAColdFirstSample(t *testing.T) {
	t.Parallel()
	var l latency
	if got := l.get(); got != 0 {
		t.Errorf("no sample yet: %v", got)
	}
	l.observe(50 * time.Millisecond)
	if got := l.get(); got != 50*time.Millisecond {
		t.Errorf("one sample of 50ms: %v", got)
	}
	l.observe(time.Millisecond)
	l.observe(time.Millisecond)
	if got := l.get(); got != time.Millisecond {
		t.Errorf("after a cold 50ms and two of 1ms: %v, want 1ms", got)
	}
	for range latencyWindow / 2 {
		l.observe(time.Millisecond)
	}
	for range latencyWindow / 2 {
		l.observe(40 * time.Millisecond)
	}
	if got := l.get(); got != time.Millisecond {
		t.Errorf("after %d slow samples among %d: %v, want 1ms", latencyWindow/2, latencyWindow, got)
	}
	l.observe(40 * time.Millisecond)
	if got := l.get(); got != 40*time.Millisecond {
		t.Errorf("once most of the window is slow: %v, want 40ms", got)
	}
}
