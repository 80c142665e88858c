package audit

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestAppendRecordedAtIsTheLayout: the hand-written recorded_at is byte for byte what
// AppendFormat(recordedAtLayout) writes for the time in UTC, whatever its zone, fraction or
// year, including the years it leaves to AppendFormat.
func TestAppendRecordedAtIsTheLayout(t *testing.T) {
	east := time.FixedZone("east", 5*3600+30*60)
	times := []time.Time{
		{}, time.Unix(0, 0), time.Unix(0, 999), time.Unix(0, 999_999_999),
		time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-1, 6, 1, 0, 0, 0, 0, time.UTC),
		time.Date(0, 1, 1, 0, 0, 0, 1000, time.UTC),
		time.Date(2026, 12, 31, 23, 30, 0, 123_456_789, east), // a day later in UTC
		time.Date(2024, 2, 29, 4, 5, 6, 7000, time.Local),
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 10000 {
		times = append(times, time.Unix(rng.Int64N(1<<36)-1<<35, rng.Int64N(1e9)).In(east))
	}
	for _, tm := range times {
		want := tm.UTC().AppendFormat([]byte("x"), recordedAtLayout)
		if got := appendRecordedAt([]byte("x"), tm); string(got) != string(want) {
			t.Fatalf("%v: got %q, want %q", tm, got, want)
		}
	}
}
