package api_test

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/idlog/idlog/commands"
	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/eventstore"
)

// BenchmarkAuthzDecision is the authz endpoint's decision in-process, on SQLite and PostgreSQL,
// with 1,000 permissions and 1,000 restrictions: restrictions, the session check (which reads
// the user's stream), permissions and the upstream token, for a signed-in member. It reports the
// p50 and p99 latency of one decision, and, beside it, the rules alone (restrictions and
// permissions in memory) as "rules-p99".
func BenchmarkAuthzDecision(b *testing.B) {
	for _, backend := range benchBackends() {
		b.Run(backend, func(b *testing.B) {
			s := newServer(b, backend, serverOptions{})
			meta := commands.Meta{ActorUID: eventstore.ActorSystem}
			ctx := context.Background()
			for i := range 1000 {
				if _, err := s.accounts.App.Policy.CreatePermission(ctx, meta, domain.Permission{
					Role: []string{"member", "admin", "support", "auditor"}[i%4], Verb: []string{"GET", "POST", "ALL"}[i%3],
					Path: fmt.Sprintf("api/v2/service%d/", i), Action: []string{"ACCEPT", "ACCEPT", "DROP", "AUDIT"}[i%4], Topic: "t",
				}); err != nil {
					b.Fatal(err)
				}
				scope, value := "ip", fmt.Sprintf("10.%d.%d.1", i/250, i%250)
				if i%2 == 1 {
					scope, value = "ip_subnet", fmt.Sprintf("172.%d.%d.0/24", 16+i/250, i%250)
				}
				if _, err := s.accounts.App.Policy.CreateRestriction(ctx, meta, domain.Restriction{
					Category: []string{"blacklist", "whitelist", "maintenance", "blocklogin"}[i%4], Scope: scope, Value: value,
				}); err != nil {
					b.Fatal(err)
				}
			}
			if _, err := s.accounts.App.Policy.CreatePermission(ctx, meta, domain.Permission{Role: "member", Verb: "GET", Path: "api/v2/trade", Action: "ACCEPT"}); err != nil {
				b.Fatal(err)
			}
			if err := s.accounts.Gatekeeper.Engine.Refresh(ctx); err != nil {
				b.Fatal(err)
			}
			s.signUp(b, "bench@example.com", "")
			tok := s.signIn(b, "bench@example.com", "")
			if r := s.gate(http.MethodGet, "/api/v2/trade/markets", tok, "192.0.2.1"); r.status != http.StatusOK {
				b.Fatalf("authz: %d %s", r.status, r.body)
			}
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				r := s.gate(http.MethodGet, "/api/v2/trade/markets", tok, "192.0.2.1")
				lat = append(lat, time.Since(start))
				if r.status != http.StatusOK {
					b.Fatalf("authz: %d %s", r.status, r.body)
				}
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")

			rules, ip := s.accounts.Gatekeeper.Engine.Rules(), netip.MustParseAddr("192.0.2.1")
			inMem := make([]time.Duration, 0, 10000)
			for range 10000 {
				start := time.Now()
				if _, refused := rules.Restrict(ip, "api/v2/trade/markets", nil); refused {
					b.Fatal("refused")
				}
				if !rules.Permit("member", "GET", "api/v2/trade/markets").Allowed {
					b.Fatal("not permitted")
				}
				inMem = append(inMem, time.Since(start))
			}
			slices.Sort(inMem)
			b.ReportMetric(float64(inMem[len(inMem)*99/100].Nanoseconds())/1000, "rules-p99-µs")
		})
	}
}
