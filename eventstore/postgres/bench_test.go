package postgres_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/eventstore/eventstoretest"
	"github.com/idlog/idlog/eventstore/postgres"
)

// A typical identity event: ~200 bytes of JSON and full metadata.
var benchData = json.RawMessage(`{"uid":"ID1234567890","email":"someone@example.com","username":"someone","role":"member","level":0,"data":{"locale":"en","referrer":"newsletter-2026-11"}}`)

var benchMeta = eventstore.Metadata{ActorUID: "ID1234567890", ActorRole: "member", IP: "203.0.113.9", UserAgent: "Mozilla/5.0 (X11; Linux x86_64)", CorrelationID: "5b0f6c3e-4f63-4b53-a3de-4b6e63c0d7a1"}

// BenchmarkAppendVsRaw compares the store's append with its baseline in one run, interleaved
// in blocks so machine noise hits both alike. One op is one event appended through the store
// (one append, a new stream, expected: no stream) plus the same row inserted straight into a
// table of the same shape and indexes, one autocommit INSERT each. With replicas=true the store
// tells other processes of its appends (Options.Replicas), as idlog serve's does.
func BenchmarkAppendVsRaw(b *testing.B) {
	for _, replicas := range []bool{false, true} {
		for _, writers := range []int{1, 8} {
			b.Run(fmt.Sprintf("replicas=%v/writers=%d", replicas, writers), func(b *testing.B) {
				appendVsRaw(b, replicas, writers)
			})
		}
	}
}

func appendVsRaw(b *testing.B, replicas bool, writers int) {
	dsn := eventstoretest.PostgresSchema(b)
	s := open(b, postgres.Options{DSN: dsn, Replicas: replicas})
	defer s.Close()
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(16)
	db.SetMaxIdleConns(16)
	// The same shape, constraints and indexes as the store's own table.
	if _, err := db.Exec(`CREATE TABLE raw_events (LIKE events INCLUDING ALL);
		CREATE SEQUENCE raw_events_seq OWNED BY raw_events.position;
		ALTER TABLE raw_events ALTER position SET DEFAULT nextval('raw_events_seq'),
			ALTER recorded_at SET DEFAULT now()`); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	run := uuid.NewString()[:8]
	appendOne := func(i int64) error {
		_, err := s.Append(ctx, eventstore.Append{
			Stream: fmt.Sprintf("user-%s-%d", run, i), Expected: eventstore.NoStream,
			Events: []eventstore.NewEvent{{Type: "UserRegistered", SchemaVersion: 1, Data: benchData, Metadata: benchMeta}},
		})
		return err
	}
	insertOne := func(i int64) error {
		id, _ := uuid.NewV7()
		meta, _ := json.Marshal(benchMeta) // the store encodes metadata per append too
		_, err := db.Exec(`INSERT INTO raw_events (event_id, stream_id, stream_version, event_type, schema_version, data, metadata)
			VALUES ($1, $2, 1, 'UserRegistered', 1, $3, $4)`, id, fmt.Sprintf("user-%s-%d", run, i), string(benchData), string(meta))
		return err
	}
	var appendTime, rawTime time.Duration
	const block = 250
	b.ResetTimer()
	for done := 0; done < b.N; done += block {
		n := min(block, b.N-done)
		appendTime += timed(b, writers, n, appendOne)
		rawTime += timed(b, writers, n, insertOne)
	}
	b.StopTimer()
	appendRate := float64(b.N) / appendTime.Seconds()
	rawRate := float64(b.N) / rawTime.Seconds()
	b.ReportMetric(appendRate, "append-events/s")
	b.ReportMetric(rawRate, "raw-events/s")
	b.ReportMetric(100*appendRate/rawRate, "%-of-raw")
}

var opSeq atomic.Int64

// timed runs op n times over `writers` goroutines and returns the wall time it took.
func timed(b *testing.B, writers, n int, op func(i int64) error) time.Duration {
	var left atomic.Int64
	left.Store(int64(n))
	var wg sync.WaitGroup
	start := time.Now()
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for left.Add(-1) >= 0 {
				if err := op(opSeq.Add(1)); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(start)
}

// BenchmarkReadAll reads a log of 200,000 events (b.N passes) and reports events/s and the heap
// in use during the read: it stays flat because reads page.
func BenchmarkReadAll(b *testing.B) {
	const size = 200_000
	s := open(b, postgres.Options{DSN: eventstoretest.PostgresSchema(b)})
	defer s.Close()
	ctx := context.Background()
	batch := make([]eventstore.NewEvent, 1000)
	for i := range batch {
		batch[i] = eventstore.NewEvent{Type: "UserRegistered", SchemaVersion: 1, Data: benchData, Metadata: benchMeta}
	}
	for i := range size / len(batch) {
		if _, err := s.Append(ctx, eventstore.Append{Stream: fmt.Sprintf("bulk-%d", i), Expected: eventstore.NoStream, Events: batch}); err != nil {
			b.Fatal(err)
		}
	}
	var peak uint64
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		n := 0
		for _, err := range s.ReadAll(ctx, 0, eventstore.Filter{}) {
			if err != nil {
				b.Fatal(err)
			}
			n++
			if n%50_000 == 0 {
				var m runtime.MemStats
				runtime.ReadMemStats(&m)
				peak = max(peak, m.HeapInuse)
			}
		}
		if n != size {
			b.Fatalf("read %d events, want %d", n, size)
		}
	}
	b.ReportMetric(float64(size*b.N)/time.Since(start).Seconds(), "events/s")
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
}
