package sqlite_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/url"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/eventstore/sqlite"
	"github.com/idlog/idlog/migrations"
)

// benchData is one event body of about 200 bytes, the size of a typical identity event.
var benchData = func() json.RawMessage {
	d, _ := json.Marshal(map[string]string{
		"email":      "alice.liddell@example.com",
		"username":   "alice_liddell",
		"role":       "member",
		"level":      "1",
		"user_agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)",
		"referral":   "IDA1B2C3D4E5",
	})
	return d
}()

var benchMeta = eventstore.Metadata{ActorUID: "IDA1B2C3D4E5", ActorRole: "member", IP: "203.0.113.7", CorrelationID: "0190c1d2-3e4f-7a8b-9c0d-1e2f3a4b5c6d"}

var benchWriters = []int{1, 8}

// runWriters runs op b.N times spread over n goroutines and reports events/s.
func runWriters(b *testing.B, n int, op func(i int64) error) {
	b.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, n)
	b.ResetTimer()
	start := time.Now()
	for range n {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				if err := op(i); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
}

// BenchmarkAppend: one ~200-byte event per append, a fresh stream per append (NoStream), through
// the store's writer and its group commit.
func BenchmarkAppend(b *testing.B) {
	for _, writers := range benchWriters {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			s, err := sqlite.Open(context.Background(), sqlite.Options{Path: filepath.Join(b.TempDir(), "events.db")})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			ctx := context.Background()
			runWriters(b, writers, func(i int64) error {
				_, err := s.Append(ctx, eventstore.Append{
					Stream:   fmt.Sprintf("user-%d", i),
					Expected: eventstore.NoStream,
					Events:   []eventstore.NewEvent{{Type: "UserRegistered", SchemaVersion: 1, Data: benchData, Metadata: benchMeta}},
				})
				return err
			})
		})
	}
}

// BenchmarkRawInsert is the floor Append is measured against: the same row, on the same kind of
// file with the same pragmas, inserted directly, one transaction per row. With writers=8 every
// goroutine writes through a pool of 8 connections with BEGIN IMMEDIATE and a busy timeout, as a
// store without a writer goroutine would; no mutex.
func BenchmarkRawInsert(b *testing.B) {
	for _, writers := range benchWriters {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "events.db")
			q := url.Values{"_pragma": {"busy_timeout(5000)", "foreign_keys(1)", "synchronous(FULL)", "journal_mode(WAL)"}, "_txlock": {"immediate"}}
			db, err := sql.Open("sqlite", (&url.URL{Scheme: "file", Path: path, RawQuery: q.Encode()}).String())
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			db.SetMaxOpenConns(writers)
			db.SetMaxIdleConns(writers)
			ctx := context.Background()
			if err := migrations.Up(ctx, db, migrations.SQLite); err != nil {
				b.Fatal(err)
			}
			ins, err := db.Prepare(`INSERT INTO events (event_id, stream_id, stream_version, event_type, schema_version, data, metadata, recorded_at)
				VALUES (?, ?, 1, 'UserRegistered', 1, ?, ?, ?)`)
			if err != nil {
				b.Fatal(err)
			}
			defer ins.Close()
			data := string(benchData)
			// A failed transaction (SQLITE_BUSY past the timeout) is counted, not fatal: how often
			// it happens is part of what this measures.
			var failed atomic.Int64
			runWriters(b, writers, func(i int64) error {
				id, err := uuid.NewV7()
				if err != nil {
					return err
				}
				md, err := json.Marshal(benchMeta)
				if err != nil {
					return err
				}
				tx, err := db.BeginTx(ctx, nil)
				if err != nil {
					failed.Add(1)
					return nil
				}
				if _, err := tx.Stmt(ins).Exec(id.String(), fmt.Sprintf("user-%d", i), data, string(md), time.Now().UnixMicro()); err != nil {
					tx.Rollback()
					failed.Add(1)
					return nil
				}
				if err := tx.Commit(); err != nil {
					failed.Add(1)
				}
				return nil
			})
			b.ReportMetric(float64(failed.Load()), "failed-txs")
		})
	}
}

// BenchmarkReadAll reads a pre-filled log in full, once per op, at two log sizes. Memory stays
// flat: the peak heap in use while reading is about the same for both sizes, and far below the
// size of the log's data.
func BenchmarkReadAll(b *testing.B) {
	for _, size := range []int{10000, 100000} {
		b.Run(fmt.Sprintf("events=%d", size), func(b *testing.B) { benchReadAll(b, size) })
	}
}

func benchReadAll(b *testing.B, size int) {
	const perAppend = 100
	s, err := sqlite.Open(context.Background(), sqlite.Options{Path: filepath.Join(b.TempDir(), "events.db")})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	for a := range size / perAppend {
		events := make([]eventstore.NewEvent, perAppend)
		for i := range events {
			events[i] = eventstore.NewEvent{Type: "UserRegistered", SchemaVersion: 1, Data: benchData, Metadata: benchMeta}
		}
		if _, err := s.Append(ctx, eventstore.Append{Stream: fmt.Sprintf("user-%d", a), Expected: eventstore.NoStream, Events: events}); err != nil {
			b.Fatal(err)
		}
	}
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before, peak := ms.HeapInuse, ms.HeapInuse
	var logBytes int64

	b.ResetTimer()
	start := time.Now()
	total := 0
	for range b.N {
		n := 0
		for e, err := range s.ReadAll(ctx, 0, eventstore.Filter{}) {
			if err != nil {
				b.Fatal(err)
			}
			if total == 0 {
				logBytes += int64(len(e.Data))
			}
			if n++; n%2000 == 0 {
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapInuse)
			}
		}
		if n != size {
			b.Fatalf("read %d events, want %d", n, size)
		}
		total += n
	}
	elapsed := time.Since(start)
	b.StopTimer()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(total)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(before), "heap-before-B")
	b.ReportMetric(float64(peak), "heap-peak-B")
	b.ReportMetric(float64(ms.HeapInuse), "heap-after-B")
	b.ReportMetric(float64(logBytes), "event-data-B")
}
