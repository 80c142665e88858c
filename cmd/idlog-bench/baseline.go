package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"fmt"
	"net/url"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	_ "github.com/lib/pq"
	"golang.org/x/crypto/argon2"
	_ "modernc.org/sqlite"
)

// InsertBaseline is the raw write rate of the server's database: one-row INSERTs, each its own
// transaction, from as many connections as the load had clients (one for SQLite, which has one
// writer, as idlog's store does), into a scratch table dropped afterwards.
type InsertBaseline struct {
	Database    string  `json:"database"`
	Connections int     `json:"connections"`
	Rows        int64   `json:"rows"`
	PerSecond   float64 `json:"per_second"`
	P50Ms       float64 `json:"p50_ms"`
	P95Ms       float64 `json:"p95_ms"`
	P99Ms       float64 `json:"p99_ms"`
}

const baselineTable = "idlog_bench_baseline"

func insertBaseline(ctx context.Context, cfg config) (*InsertBaseline, error) {
	var (
		db    *sql.DB
		err   error
		conns = cfg.Clients
		kind  string
		ddl   string
	)
	switch {
	case cfg.DatabaseURL != "":
		kind = "postgres"
		db, err = sql.Open("postgres", cfg.DatabaseURL)
		ddl = "CREATE TABLE IF NOT EXISTS " + baselineTable + " (id bigserial PRIMARY KEY, data jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT now())"
	case cfg.SQLitePath != "":
		kind, conns = "sqlite", 1
		// The pragmas of idlog's own writer: WAL and synchronous FULL, so the two are comparable.
		abs, aerr := filepath.Abs(cfg.SQLitePath)
		if aerr != nil {
			return nil, aerr
		}
		u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}
		q := url.Values{}
		q.Add("_pragma", "busy_timeout(10000)")
		q.Add("_pragma", "synchronous(FULL)")
		q.Add("_pragma", "journal_mode(WAL)")
		u.RawQuery = q.Encode()
		db, err = sql.Open("sqlite", u.String())
		ddl = "CREATE TABLE IF NOT EXISTS " + baselineTable + " (id INTEGER PRIMARY KEY, data TEXT NOT NULL, created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)"
	default:
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer db.Close()
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	if _, err := db.ExecContext(ctx, ddl); err != nil {
		return nil, fmt.Errorf("baseline: create %s: %w", baselineTable, err)
	}
	defer func() { _, _ = db.Exec("DROP TABLE IF EXISTS " + baselineTable) }()

	ins := "INSERT INTO " + baselineTable + " (data) VALUES ($1)"
	if kind == "sqlite" {
		ins = "INSERT INTO " + baselineTable + " (data) VALUES (?)"
	}
	// About the size of an event's data, so the bytes written are comparable too.
	payload := `{"email":"bench@example.com","username":null,"role":"member","level":0,"reason":"baseline","reference":"0123456789abcdef"}`
	var rows atomic.Int64
	rec := &recorder{}
	bctx, cancel := context.WithTimeout(ctx, cfg.Baseline)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for bctx.Err() == nil {
				t := time.Now()
				if _, err := db.ExecContext(bctx, ins, payload); err != nil {
					if bctx.Err() == nil {
						rec.add(0, 500, err)
					}
					continue
				}
				rec.add(time.Since(t), 200, nil)
				rows.Add(1)
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	if rec.lastErr != "" && rows.Load() == 0 {
		return nil, fmt.Errorf("baseline: insert: %s", rec.lastErr)
	}
	p := percentiles(rec.latencies)
	return &InsertBaseline{
		Database: kind, Connections: conns, Rows: rows.Load(), PerSecond: float64(rows.Load()) / el.Seconds(),
		P50Ms: ms(p.p50), P95Ms: ms(p.p95), P99Ms: ms(p.p99),
	}, nil
}

// HashBound is the most password operations (sign-ups, sign-ins: one argon2id hash each) the
// machine's cores can do with the server's argon2 parameters, and what they did at once here.
type HashBound struct {
	Params       argon2Params `json:"params"`
	Cores        int          `json:"cores"`
	OneHashMs    float64      `json:"one_hash_ms"`
	BoundPerSec  float64      `json:"bound_per_second"`
	ParallelRate float64      `json:"measured_parallel_per_second"`
}

func hashBound(ctx context.Context, p argon2Params, d time.Duration) HashBound {
	salt := make([]byte, 16)
	_, _ = rand.Read(salt)
	pw := []byte("bench correct horse battery staple")
	hash := func() { argon2.IDKey(pw, salt, p.Iterations, p.MemoryKiB, p.Parallelism, 32) }
	hash() // warm the allocator
	var one []time.Duration
	for range 5 {
		t := time.Now()
		hash()
		one = append(one, time.Since(t))
	}
	median := percentiles(one).p50
	cores := runtime.NumCPU()
	var n atomic.Int64
	hctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for range cores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for hctx.Err() == nil {
				hash()
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	return HashBound{
		Params: p, Cores: cores, OneHashMs: ms(median),
		BoundPerSec:  float64(cores) / median.Seconds(),
		ParallelRate: float64(n.Load()) / time.Since(start).Seconds(),
	}
}
