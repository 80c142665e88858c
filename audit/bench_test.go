package audit_test

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/idlog/idlog/audit"
	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/migrations"
)

// benchEvents is the log size of the benchmarks: IDLOG_AUDIT_BENCH_EVENTS, default 20,000.
func benchEvents(b *testing.B) int {
	n := 20000
	if v := os.Getenv("IDLOG_AUDIT_BENCH_EVENTS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			b.Fatalf("IDLOG_AUDIT_BENCH_EVENTS=%q: want a positive number", v)
		}
	}
	return n
}

// fill writes n events shaped like idlog's (about 300 bytes of data, metadata) through the
// store's importer, which is much faster than n appends.
func fill(b *testing.B, s eventstore.Store, n int) {
	imp := s.(audit.Importer)
	ctx := context.Background()
	at := time.Now().UTC().Truncate(time.Microsecond)
	var last uint64
	batch := make([]eventstore.Event, 0, eventstore.MaxEventsPerAppend)
	for i := range n {
		uid := fmt.Sprintf("ID%010X", i)
		batch = append(batch, eventstore.Event{
			ID: uuid.Must(uuid.NewV7()), StreamID: "user-" + uid, StreamVersion: 1, Type: "UserRegistered", SchemaVersion: 1,
			Data: []byte(fmt.Sprintf(`{"uid":%q,"email":"user%d@example.com","password_hash":"$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g","role":"member"}`, uid, i)),
			Metadata: eventstore.Metadata{ActorUID: uid, ActorRole: "member", IP: "192.0.2.7",
				UserAgent: "Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0", CorrelationID: uuid.NewString()},
			RecordedAt: at.Add(time.Duration(i) * time.Microsecond),
		})
		if len(batch) == cap(batch) || i == n-1 {
			var err error
			if last, err = imp.ImportEvents(ctx, last, batch, nil, nil); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
}

// pagedStore hides the store's eventstore.Scanner, so that Verify reads through ReadAll.
type pagedStore struct{ eventstore.Store }

// rawScan is the reference for verify: one plain query over every column of the log that the
// chain covers, each row scanned into reused raw bytes, nothing decoded, nothing hashed.
func rawScan(b *testing.B, e *env) int {
	rows, err := e.db.Query(`SELECT position, event_id, stream_id, stream_version, event_type, schema_version, data, metadata, recorded_at FROM events ORDER BY position`)
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	cols := make([]sql.RawBytes, 9)
	dest := make([]any, len(cols))
	for i := range cols {
		dest[i] = &cols[i]
	}
	n := 0
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			b.Fatal(err)
		}
		n++
	}
	if err := rows.Err(); err != nil {
		b.Fatal(err)
	}
	return n
}

// peakHeap samples the heap in use while f runs and returns the highest figure, in MiB.
func peakHeap(f func()) float64 {
	runtime.GC()
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	})
	f()
	close(stop)
	wg.Wait()
	return float64(peak.Load()) / (1 << 20)
}

// BenchmarkAudit measures sealing, verifying and exporting a log of IDLOG_AUDIT_BENCH_EVENTS
// events, in events/s, with the peak heap: it must not grow with the log.
//
//	IDLOG_AUDIT_BENCH_EVENTS=100000 go test -run '^$' -bench Audit -benchtime 1x ./audit/
//
// "scan" is the reference for verify: one plain query over the same rows, nothing decoded or
// hashed; "verify-readall" is verify through ReadAll's pages instead of the store's ScanAll.
func BenchmarkAudit(b *testing.B) {
	n := benchEvents(b)
	for _, be := range backends(b) {
		b.Run(be.name, func(b *testing.B) {
			e := be.open(b)
			start := time.Now()
			fill(b, e.store, n)
			if e.dialect == migrations.Postgres {
				// A table filled in one go has no planner statistics until autovacuum analyzes it;
				// without them the store's page query scans and sorts the whole table per page.
				e.exec(b, `ANALYZE events`)
			}
			b.Logf("%s: filled %d events in %v", be.name, n, time.Since(start).Round(time.Millisecond))
			ctx := context.Background()
			// seal keeps the chain and the Merkle tree, signing each checkpoint. seal-vs-chain-only
			// seals the same log with the tree and then without it (the sealer as it was before
			// the tree), in turns in each iteration so that both see the same machine load, and
			// reports both rates and their ratio.
			signer, _ := newAuditKey(b, "idlog-audit-bench")
			sealOnce := func(b *testing.B, chainOnly bool) (time.Duration, float64) {
				if e.dialect == migrations.Postgres {
					// Not DELETE: the next run would insert among the dead rows of the last, and
					// meet autovacuum at random.
					e.exec(b, `TRUNCATE audit_checkpoints, audit_events, audit_tree_tiles`)
				} else {
					e.exec(b, `DELETE FROM audit_checkpoints`)
					e.exec(b, `DELETE FROM audit_events`)
					e.exec(b, `DELETE FROM audit_tree_tiles`)
				}
				s := newSealer(b, e, audit.SealerOptions{Signer: signer})
				if chainOnly {
					audit.SealChainOnly(s)
				}
				var err error
				start := time.Now()
				heap := peakHeap(func() { _, err = s.CatchUp(ctx) })
				if err != nil {
					b.Fatal(err)
				}
				return time.Since(start), heap
			}
			b.Run("seal", func(b *testing.B) {
				for b.Loop() {
					d, heap := sealOnce(b, false)
					b.ReportMetric(float64(n)/d.Seconds(), "events/s")
					b.ReportMetric(heap, "peak-heap-MiB")
				}
			})
			// Each iteration is a pair, run in alternating order (so that neither always finds the
			// caches the other warmed); on a shared machine one pair can fall in a burst of load
			// that the other escapes, so the median of the pairs' ratios is reported beside the
			// ratio of the totals.
			b.Run("seal-vs-chain-only", func(b *testing.B) {
				var tree, chain time.Duration
				var ratios []float64
				i := 0
				for b.Loop() {
					var dt, dc time.Duration
					if i%2 == 0 {
						dt, _ = sealOnce(b, false)
						dc, _ = sealOnce(b, true)
					} else {
						dc, _ = sealOnce(b, true)
						dt, _ = sealOnce(b, false)
					}
					i++
					tree, chain = tree+dt, chain+dc
					ratios = append(ratios, 100*dc.Seconds()/dt.Seconds())
				}
				slices.Sort(ratios)
				b.ReportMetric(float64(n*b.N)/tree.Seconds(), "tree-events/s")
				b.ReportMetric(float64(n*b.N)/chain.Seconds(), "chain-events/s")
				b.ReportMetric(100*chain.Seconds()/tree.Seconds(), "tree/chain-%")
				b.ReportMetric(ratios[len(ratios)/2], "median-tree/chain-%")
			})
			b.Run("scan", func(b *testing.B) {
				for b.Loop() {
					start := time.Now()
					if got := rawScan(b, e); got != n {
						b.Fatalf("scan read %d rows, want %d", got, n)
					}
					b.ReportMetric(float64(n)/time.Since(start).Seconds(), "events/s")
				}
			})
			b.Run("verify", func(b *testing.B) {
				for b.Loop() {
					var r audit.Report
					var err error
					start := time.Now()
					heap := peakHeap(func() { r, err = audit.Verify(ctx, e.store, e.ledger) })
					if err != nil || !r.OK() || r.Verified != uint64(n) {
						b.Fatalf("verify: %v %+v", err, r)
					}
					b.ReportMetric(float64(n)/time.Since(start).Seconds(), "events/s")
					b.ReportMetric(heap, "peak-heap-MiB")
				}
			})
			// The read path verify had before ScanAll, in the same run: the store's ReadAll pages.
			b.Run("verify-readall", func(b *testing.B) {
				for b.Loop() {
					start := time.Now()
					r, err := audit.Verify(ctx, pagedStore{e.store}, e.ledger)
					if err != nil || !r.OK() || r.Verified != uint64(n) {
						b.Fatalf("verify: %v %+v", err, r)
					}
					b.ReportMetric(float64(n)/time.Since(start).Seconds(), "events/s")
				}
			})
			b.Run("export", func(b *testing.B) {
				for b.Loop() {
					var err error
					start := time.Now()
					heap := peakHeap(func() { _, err = audit.Export(ctx, e.store, io.Discard, 0) })
					if err != nil {
						b.Fatal(err)
					}
					b.ReportMetric(float64(n)/time.Since(start).Seconds(), "events/s")
					b.ReportMetric(heap, "peak-heap-MiB")
				}
			})
		})
	}
}
