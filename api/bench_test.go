package api_test

import (
	"fmt"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/idlog/idlog/auth"
	"github.com/idlog/idlog/commands"
)

// BenchmarkSignIn measures sign-ins per second through the router with 4 clients at once and
// OWASP's argon2id costs, beside the bound that hashing alone sets in the same run: cores / time
// of one hash. Everything else a sign-in does (the append, the token, the read-model wait) should
// cost little of that bound. hashes4/s is what hashing alone reaches with 4 goroutines in the same
// run: on shared or hyperthreaded cores it is the bound that can actually be reached.
func BenchmarkSignIn(b *testing.B) {
	for _, backend := range benchBackends() {
		b.Run(backend, func(b *testing.B) {
			const clients = 4
			s := newServer(b, backend, serverOptions{
				params: auth.DefaultParams(),
				signIn: commands.SignInConfig{MaxFailures: -1, AddressMaxFailures: -1},
			})
			for i := range clients {
				s.signUp(b, fmt.Sprintf("bench%d@example.com", i), "")
			}
			// The bound, measured now, under the same load as the run.
			hasher, err := auth.NewPasswordHasher(auth.DefaultParams())
			if err != nil {
				b.Fatal(err)
			}
			hash := hasher.Hash(password)
			start := time.Now()
			const hashes = 20
			for range hashes {
				hasher.Verify(password, hash)
			}
			perHash := time.Since(start) / hashes
			bound := float64(runtime.GOMAXPROCS(0)) / perHash.Seconds()
			// What hashing alone reaches with as many goroutines as clients: below the bound when
			// the cores are shared, or are hyperthreads of one another.
			start = time.Now()
			var hw sync.WaitGroup
			for range clients {
				hw.Go(func() {
					for range hashes / 4 {
						hasher.Verify(password, hash)
					}
				})
			}
			hw.Wait()
			hashRate := float64(clients*(hashes/4)) / time.Since(start).Seconds()

			b.ResetTimer()
			start = time.Now()
			var wg sync.WaitGroup
			for c := range clients {
				wg.Go(func() {
					for i := c; i < b.N; i += clients {
						r := s.post("/api/v2/identity/sessions", obj{"login": fmt.Sprintf("bench%d@example.com", c), "password": password}, "")
						if r.status != http.StatusOK {
							b.Errorf("sign-in: %d %s", r.status, r.body)
							return
						}
					}
				})
			}
			wg.Wait()
			rate := float64(b.N) / time.Since(start).Seconds()
			b.ReportMetric(rate, "signins/s")
			b.ReportMetric(bound, "bound/s")
			b.ReportMetric(100*rate/bound, "%bound")
			b.ReportMetric(float64(perHash.Microseconds())/1000, "ms/hash")
			b.ReportMetric(hashRate, "hashes4/s")
		})
	}
}

// BenchmarkMe measures GET /api/v2/resource/users/me with 8 clients at once: the bearer check
// (signature, then the session in the event store) and the read-model query. It reports the
// latency percentiles.
func BenchmarkMe(b *testing.B) {
	for _, backend := range benchBackends() {
		b.Run(backend, func(b *testing.B) {
			clients := 8
			if n, err := strconv.Atoi(os.Getenv("IDLOG_BENCH_CLIENTS")); err == nil && n > 0 {
				clients = n
			}
			s := newServer(b, backend, serverOptions{})
			tokens := make([]string, clients)
			for i := range clients {
				s.signUp(b, fmt.Sprintf("me%d@example.com", i), "")
				tokens[i] = s.signIn(b, fmt.Sprintf("me%d@example.com", i), "")
			}
			lat := make([][]time.Duration, clients)
			b.ResetTimer()
			var wg sync.WaitGroup
			for c := range clients {
				wg.Go(func() {
					for i := c; i < b.N; i += clients {
						start := time.Now()
						r := s.get("/api/v2/resource/users/me", tokens[c])
						lat[c] = append(lat[c], time.Since(start))
						if r.status != http.StatusOK {
							b.Errorf("GET /users/me: %d %s", r.status, r.body)
							return
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			all := slices.Concat(lat...)
			slices.Sort(all)
			pct := func(p float64) float64 {
				return float64(all[min(len(all)-1, int(p*float64(len(all))))].Microseconds()) / 1000
			}
			b.ReportMetric(pct(0.50), "p50-ms")
			b.ReportMetric(pct(0.99), "p99-ms")
		})
	}
}

func benchBackends() []string {
	if os.Getenv("IDLOG_TEST_DATABASE_URL") == "" {
		return []string{"sqlite"}
	}
	return []string{"sqlite", "postgres"}
}

// BenchmarkRefreshVsSignIn measures, in one run and over the same server, refreshes per second
// (b.N of them, 4 clients each rotating its own session's token) and sign-ins per second (a fixed
// 16, OWASP's argon2id costs) with 4 clients at once, and reports their ratio: a refresh reads
// one stream, appends one event and signs one token, and never hashes a password.
func BenchmarkRefreshVsSignIn(b *testing.B) {
	for _, backend := range benchBackends() {
		b.Run(backend, func(b *testing.B) {
			const clients = 4
			s := newServer(b, backend, serverOptions{
				params: auth.DefaultParams(),
				signIn: commands.SignInConfig{MaxFailures: -1, AddressMaxFailures: -1},
			})
			refresh := make([]string, clients)
			for i := range clients {
				s.signUp(b, fmt.Sprintf("bench%d@example.com", i), "")
			}
			run := func(n int, do func(c int) bool) float64 {
				start := time.Now()
				var wg sync.WaitGroup
				for c := range clients {
					wg.Go(func() {
						for i := c; i < n; i += clients {
							if !do(c) {
								return
							}
						}
					})
				}
				wg.Wait()
				return float64(n) / time.Since(start).Seconds()
			}
			signIns := run(16, func(c int) bool {
				var out tokens
				r := s.post("/api/v2/identity/sessions", obj{"login": fmt.Sprintf("bench%d@example.com", c), "password": password}, "")
				if r.status != http.StatusOK {
					b.Errorf("sign-in: %d %s", r.status, r.body)
					return false
				}
				r.json(b, &out)
				refresh[c] = out.RefreshToken
				return true
			})
			b.ResetTimer()
			refreshes := run(b.N, func(c int) bool {
				var out tokens
				r := s.refresh(refresh[c])
				if r.status != http.StatusOK {
					b.Errorf("refresh: %d %s", r.status, r.body)
					return false
				}
				r.json(b, &out)
				refresh[c] = out.RefreshToken
				return true
			})
			b.ReportMetric(refreshes, "refreshes/s")
			b.ReportMetric(signIns, "signins/s")
			b.ReportMetric(refreshes/signIns, "refresh/signin")
		})
	}
}
