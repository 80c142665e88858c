package commands

import (
	"context"
	"testing"
	"time"
)

// A burst of late timers must not end the padding. Before, once the lateness estimate passed a
// pad, sleep returned at once and never timed a timer again, so the estimate stayed there and an
// unknown login answered a pad's length earlier than a wrong password for good
// (TestSignInTimingAlike failed in about a third of its runs on a loaded machine).
func TestSleepRecoversFromALateEstimate(t *testing.T) {
	// Not parallel: timerLateness is the package's.
	const d = 20 * time.Millisecond
	for range latencyWindow {
		timerLateness.observe(4 * d) // a burst of late timers
	}
	for i := range 60 {
		start := time.Now()
		sleep(context.Background(), d)
		if took := time.Since(start); took < d/2 {
			t.Fatalf("sleep %d of %v returned after %v: the pad is lost", i, d, took)
		}
	}
	if got := timerLateness.get(); got >= d/2 {
		t.Errorf("lateness estimate still %v after 60 sleeps of %v", got, d)
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
