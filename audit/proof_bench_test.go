package audit_test

import (
	"context"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/idlog/idlog/audit"
	"github.com/idlog/idlog/migrations"
)

// BenchmarkProofLatency measures how long an inclusion proof and a consistency proof take to
// build from the stored tree (audit_tree_tiles), for random ordinals and sizes of a sealed log of
// IDLOG_AUDIT_BENCH_EVENTS events, and reports the median and the 99th percentile in ms:
//
//	IDLOG_AUDIT_BENCH_EVENTS=1000000 go test -run '^$' -bench ProofLatency -benchtime 2000x ./audit/
func BenchmarkProofLatency(b *testing.B) {
	n := benchEvents(b)
	for _, be := range backends(b) {
		b.Run(be.name, func(b *testing.B) {
			e := be.open(b)
			fill(b, e.store, n)
			if e.dialect == migrations.Postgres {
				e.exec(b, `ANALYZE events`)
			}
			ctx := context.Background()
			signer, _ := newAuditKey(b, "idlog-audit-bench")
			start := time.Now()
			if _, err := newSealer(b, e, audit.SealerOptions{Signer: signer}).CatchUp(ctx); err != nil {
				b.Fatal(err)
			}
			b.Logf("%s: sealed %d events in %v", be.name, n, time.Since(start).Round(time.Millisecond))
			size, err := e.ledger.TreeSize(ctx)
			if err != nil || size != uint64(n) {
				b.Fatalf("tree size %d (%v), want %d", size, err, n)
			}
			rng := rand.New(rand.NewPCG(1, 2))
			report := func(b *testing.B, d []time.Duration) {
				slices.Sort(d)
				b.ReportMetric(float64(d[len(d)/2].Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(d[len(d)*99/100].Microseconds())/1000, "p99-ms")
			}
			b.Run("inclusion", func(b *testing.B) {
				var d []time.Duration
				for b.Loop() {
					ord := 1 + rng.Uint64N(size)
					at := ord + rng.Uint64N(size-ord+1)
					t0 := time.Now()
					if _, err := e.ledger.InclusionProof(ctx, ord, at); err != nil {
						b.Fatal(err)
					}
					d = append(d, time.Since(t0))
				}
				report(b, d)
			})
			b.Run("consistency", func(b *testing.B) {
				var d []time.Duration
				for b.Loop() {
					from := 1 + rng.Uint64N(size)
					to := from + rng.Uint64N(size-from+1)
					t0 := time.Now()
					if _, err := e.ledger.ConsistencyProof(ctx, from, to); err != nil {
						b.Fatal(err)
					}
					d = append(d, time.Since(t0))
				}
				report(b, d)
			})
		})
	}
}
