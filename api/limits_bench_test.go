package api_test

import (
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/idlog/idlog/attempts"
	"github.com/idlog/idlog/commands"
)

// BenchmarkResetRequestTiming measures, in one run and interleaved, how long a reset request takes
// for a registered address (a token stored and handed off) and for an unknown one (padded to the
// median of the first): unknown/known near 1 means timing does not tell them apart. The code
// request limits are raised out of the way, so that every known request takes the sending path.
func BenchmarkResetRequestTiming(b *testing.B) {
	many := attempts.Policy{Free: 1 << 30, Delay: time.Second, MaxDelay: time.Second, Forget: time.Hour}
	s := newServer(b, "sqlite", serverOptions{limits: commands.LimitsConfig{CodeAccount: many, CodeAddress: many}})
	s.signUp(b, "timed@example.com", "")
	var known, unknown []time.Duration
	for i := range b.N + 20 {
		pair := []string{"timed@example.com", fmt.Sprintf("nobody%d@example.com", i)}
		if i%2 == 1 { // neither goes always first
			pair[0], pair[1] = pair[1], pair[0]
		}
		for _, email := range pair {
			start := time.Now()
			s.post("/api/v2/identity/users/password/generate_code", obj{"email": email}, "").want(b, http.StatusCreated)
			if i >= 20 { // the padding learns the median first
				if email == "timed@example.com" {
					known = append(known, time.Since(start))
				} else {
					unknown = append(unknown, time.Since(start))
				}
			}
		}
	}
	median := func(d []time.Duration) time.Duration { slices.Sort(d); return d[len(d)/2] }
	k, u := median(known), median(unknown)
	b.ReportMetric(float64(k.Microseconds()), "known-µs")
	b.ReportMetric(float64(u.Microseconds()), "unknown-µs")
	b.ReportMetric(float64(u)/float64(k), "unknown/known")
}
