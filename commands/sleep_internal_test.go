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
	saved := timerLateness.ns.Load()
	defer timerLateness.ns.Store(saved)
	const d = 20 * time.Millisecond
	timerLateness.ns.Store(int64(4 * d)) // as after a burst of late timers
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
