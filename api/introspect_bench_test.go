package api_test

import (
	"net/http"
	"testing"
	"time"
)

// BenchmarkIntrospection measures, in one run and on the same server, a token introspection by
// a resource server with HTTP Basic (its secret, proved within the minute, then the session
// check) against GET /api/v2/resource/users/me with the same token (the session check and the user's
// read), one client: ns/op of each and their ratio.
func BenchmarkIntrospection(b *testing.B) {
	for _, backend := range benchBackends() {
		b.Run(backend, func(b *testing.B) {
			s := newServer(b, backend, serverOptions{})
			s.signUp(b, "bench@example.com", "")
			tok := s.signIn(b, "bench@example.com", "")
			introspect := func() {
				r := s.do(request{method: http.MethodPost, path: introspectPath, body: obj{"token": tok}, header: rsAuth()})
				if r.status != http.StatusOK {
					b.Fatalf("introspect: %d %s", r.status, r.body)
				}
			}
			me := func() {
				if r := s.get("/api/v2/resource/users/me", tok); r.status != http.StatusOK {
					b.Fatalf("users/me: %d %s", r.status, r.body)
				}
			}
			introspect()
			me()
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				introspect()
			}
			basic := time.Since(start)
			start = time.Now()
			for range b.N {
				me()
			}
			read := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(basic.Nanoseconds())/float64(b.N), "ns/introspect")
			b.ReportMetric(float64(read.Nanoseconds())/float64(b.N), "ns/me")
			b.ReportMetric(float64(basic)/float64(read), "ratio")
		})
	}
}
