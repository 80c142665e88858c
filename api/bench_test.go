package api_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/idlog/idlog/auth"
	"github.com/idlog/idlog/commands"
)

// BenchmarkSignIn measures sign-ins per second through the router with 4 clients at once and
// OWASP's argon2id costs, beside the bound that hashing alone sets in the same run: cores / time
// of one hash. Everything else a sign-in does (the append, the token, the read-model wait) should
// cost little of that bound. hashes/s is what hashing alone reaches with as many goroutines as
// clients in the same run (before and after the sign-ins, averaged): on shared or hyperthreaded
// cores it is the bound that can actually be reached, and %hashes the figure to watch (goal: 85).
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
			// the cores are shared, or are hyperthreads of one another. Measured before and after
			// the sign-ins, so that load from elsewhere on the machine weighs on both alike.
			hashRate := func() float64 {
				const each = 6
				start := time.Now()
				var hw sync.WaitGroup
				for range clients {
					hw.Go(func() {
						for range each {
							hasher.Verify(password, hash)
						}
					})
				}
				hw.Wait()
				return float64(clients*each) / time.Since(start).Seconds()
			}
			hashesBefore := hashRate()

			xacts := dbTransactions(b, s)
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
			b.StopTimer()
			if backend == "postgres" {
				b.ReportMetric(float64(dbTransactions(b, s)-xacts)/float64(b.N), "db-xacts/op")
			}
			hashesPerSec := (hashesBefore + hashRate()) / 2
			b.ReportMetric(rate, "signins/s")
			b.ReportMetric(hashesPerSec, "hashes/s")
			b.ReportMetric(100*rate/hashesPerSec, "%hashes")
			b.ReportMetric(bound, "bound/s")
			b.ReportMetric(100*rate/bound, "%bound")
			b.ReportMetric(float64(perHash.Microseconds())/1000, "ms/hash")
		})
	}
}

// BenchmarkSignInCheapHash measures sign-ins with 4 clients at once at argon2id's lowest cost (64
// KiB, one pass), with the attempt limiter on at its defaults: the cost of a sign-in besides the
// hash (the limiter's counters, the session's events, the read models, the token). The figure to
// compare with another identity server at its lowest hash cost; on PostgreSQL it reports the
// database transactions per sign-in too.
func BenchmarkSignInCheapHash(b *testing.B) {
	for _, backend := range benchBackends() {
		b.Run(backend, func(b *testing.B) {
			const clients = 4
			s := newServer(b, backend, serverOptions{
				params: auth.Params{Memory: 64, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32},
			})
			for i := range clients {
				s.signUp(b, fmt.Sprintf("cheap%d@example.com", i), "")
				s.signIn(b, fmt.Sprintf("cheap%d@example.com", i), "") // the address is known from now on
			}
			xacts := dbTransactions(b, s)
			b.ResetTimer()
			took := concurrently(clients, b.N, func(c, _ int) bool {
				r := s.post("/api/v2/identity/sessions", obj{"login": fmt.Sprintf("cheap%d@example.com", c), "password": password}, "")
				if r.status != http.StatusOK {
					b.Errorf("sign-in: %d %s", r.status, r.body)
					return false
				}
				return true
			})
			b.StopTimer()
			if backend == "postgres" {
				b.ReportMetric(float64(dbTransactions(b, s)-xacts)/float64(b.N), "db-xacts/op")
			}
			b.ReportMetric(float64(b.N)/took.Seconds(), "signins/s")
		})
	}
}

// BenchmarkMe measures GET /api/v2/resource/users/me with 8 clients at once (IDLOG_BENCH_CLIENTS
// overrides), through the router (IDLOG_BENCH_HTTP=1: over loopback HTTP): the token, then the
// session check and the profile in one statement. In the same run and with as many clients it measures idlog's own one-query
// baseline: the cheapest prepared SELECT of a user row through the same database handle. The two
// alternate in ten rounds, so that load from elsewhere on a shared machine weighs on both alike.
// me/s over baseline/s (%baseline) is the figure to compare across machines; the latency
// percentiles are the route's.
func BenchmarkMe(b *testing.B) {
	for _, backend := range benchBackends() {
		b.Run(backend, func(b *testing.B) {
			clients := 8
			if n, err := strconv.Atoi(os.Getenv("IDLOG_BENCH_CLIENTS")); err == nil && n > 0 {
				clients = n
			}
			s := newServer(b, backend, serverOptions{})
			tokens := make([]string, clients)
			uids := make([]string, clients)
			for i := range clients {
				uids[i] = s.signUp(b, fmt.Sprintf("me%d@example.com", i), "")
				tokens[i] = s.signIn(b, fmt.Sprintf("me%d@example.com", i), "")
			}
			for _, tok := range tokens { // warm: each user is held in memory, as after their sign-in
				if r := s.get("/api/v2/resource/users/me", tok); r.status != http.StatusOK {
					b.Fatalf("GET /users/me: %d %s", r.status, r.body)
				}
			}
			baseline := newOneQuery(b, s)
			get := func(token string) (int, string) {
				r := s.get("/api/v2/resource/users/me", token)
				return r.status, r.body
			}
			if os.Getenv("IDLOG_BENCH_HTTP") != "" { // over loopback TCP, as a client would
				srv := httptest.NewServer(s.h)
				defer srv.Close()
				client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
				get = func(token string) (int, string) {
					req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/v2/resource/users/me", nil)
					req.Header.Set("Authorization", "Bearer "+token)
					res, err := client.Do(req)
					if err != nil {
						return 0, err.Error()
					}
					defer res.Body.Close()
					body, _ := io.ReadAll(res.Body)
					return res.StatusCode, string(body)
				}
			}
			lat := make([][]time.Duration, clients)
			me := func(c, i int) bool {
				t := time.Now()
				status, body := get(tokens[c])
				lat[c] = append(lat[c], time.Since(t))
				if status != http.StatusOK {
					b.Errorf("GET /users/me: %d %s", status, body)
					return false
				}
				return true
			}
			one := func(c, i int) bool { return baseline.read(b, uids[c]) }
			const rounds = 10
			var meTook, baseTook time.Duration
			b.ResetTimer()
			for round := range rounds {
				n := b.N/rounds + min(1, max(0, b.N%rounds-round)) // the rounds share b.N
				meTook += concurrently(clients, n, me)
				b.StopTimer()
				baseTook += concurrently(clients, max(n, 10), one)
				b.StartTimer()
			}
			b.StopTimer()
			rate := float64(b.N) / meTook.Seconds()
			base := float64(baseline.n.Load()) / baseTook.Seconds()
			all := slices.Concat(lat...)
			slices.Sort(all)
			pct := func(p float64) float64 {
				return float64(all[min(len(all)-1, int(p*float64(len(all))))].Microseconds()) / 1000
			}
			b.ReportMetric(rate, "me/s")
			b.ReportMetric(base, "baseline/s")
			b.ReportMetric(100*rate/base, "%baseline")
			b.ReportMetric(pct(0.50), "p50-ms")
			b.ReportMetric(pct(0.99), "p99-ms")
		})
	}
}

// dbTransactions counts the transactions PostgreSQL committed or rolled back in the server's
// database so far. Each connection reports its counts at most once a second: it reads them after
// a pause. 0 on SQLite.
func dbTransactions(b *testing.B, s *server) int64 {
	b.Helper()
	if s.db.DriverName() != "postgres" {
		return 0
	}
	time.Sleep(1100 * time.Millisecond)
	var n int64
	if err := s.db.Get(&n, `SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()`); err != nil {
		b.Fatal(err)
	}
	return n
}

// concurrently runs op n times over as many goroutines as clients (op(client, i)), and returns
// how long that took. An op that returns false stops its client.
func concurrently(clients, n int, op func(c, i int) bool) time.Duration {
	start := time.Now()
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for i := c; i < n; i += clients {
				if !op(c, i) {
					return
				}
			}
		})
	}
	wg.Wait()
	return time.Since(start)
}

// oneQuery is idlog's one-query baseline: a prepared SELECT of a user's row from the users read
// model, through the server's own database handle.
type oneQuery struct {
	stmt *sqlx.Stmt
	n    atomic.Int64
}

func newOneQuery(b *testing.B, s *server) *oneQuery {
	b.Helper()
	stmt, err := s.db.Preparex(s.db.Rebind(`SELECT uid, email, role, level, state FROM users WHERE uid = ?`))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { stmt.Close() })
	return &oneQuery{stmt: stmt}
}

func (q *oneQuery) read(b *testing.B, uid string) bool {
	var row struct {
		UID, Email, Role, State string
		Level                   int
	}
	if err := q.stmt.QueryRowx(uid).StructScan(&row); err != nil || row.UID != uid {
		b.Errorf("baseline: %v (%q)", err, row.UID)
		return false
	}
	q.n.Add(1)
	return true
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
