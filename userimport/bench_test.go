package userimport_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"golang.org/x/crypto/bcrypt"

	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/eventstore/eventstoretest"
	"github.com/idlog/idlog/eventstore/postgres"
	"github.com/idlog/idlog/eventstore/sqlite"
	"github.com/idlog/idlog/migrations"
	"github.com/idlog/idlog/personaldata"
	"github.com/idlog/idlog/projections"
	"github.com/idlog/idlog/userimport"
)

// benchStore is an event store the benchmark fills, with its key owners.
type benchStore interface {
	eventstore.Store
	eventstore.KeyOwners
}

func openBenchStore(b *testing.B, backend string) benchStore {
	s, _ := openBenchStoreSealed(b, backend, false)
	return s
}

// openBenchStoreSealed is openBenchStore, wrapped, when sealed, in the personal-data store that
// idlog users import writes through (sealing the personal fields with each user's data key).
func openBenchStoreSealed(b *testing.B, backend string, sealed bool) (benchStore, *personaldata.Store) {
	b.Helper()
	ctx := context.Background()
	var raw benchStore
	var db *sqlx.DB
	dialect := migrations.SQLite
	switch backend {
	case "postgres":
		s, err := postgres.Open(ctx, postgres.Options{DSN: eventstoretest.PostgresSchema(b)})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		raw, db, dialect = s, s.DB(), migrations.Postgres
	default:
		path := filepath.Join(b.TempDir(), "idlog.db")
		s, err := sqlite.Open(ctx, sqlite.Options{Path: path})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		raw = s
		if sealed {
			if db, err = projections.OpenSQLite(ctx, path); err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { db.Close() })
		}
	}
	if !sealed {
		return raw, nil
	}
	secret := make([]byte, 32)
	keys, err := personaldata.NewKeys(db, dialect, secret)
	if err != nil {
		b.Fatal(err)
	}
	w, err := personaldata.Wrap(personaldata.Options{Store: raw, Keys: keys, Registry: domain.NewEventRegistry(), Secret: secret})
	if err != nil {
		b.Fatal(err)
	}
	return w, w
}

// BenchmarkImport imports users (100,000 unless IDLOG_BENCH_IMPORT_USERS says otherwise) from
// one NDJSON file into an empty store, hashes copied, and reports users/s. The reference, in the
// same run: the same number of bare appends of one UserRegistered each to a new stream, with as
// many writers and no checks, so ratio = import rate / bare append rate.
func BenchmarkImport(b *testing.B) {
	n := 100_000
	if v, err := strconv.Atoi(os.Getenv("IDLOG_BENCH_IMPORT_USERS")); err == nil && v > 0 {
		n = v
	}
	hash, err := bcrypt.GenerateFromPassword([]byte("benchmark password"), bcrypt.MinCost)
	if err != nil {
		b.Fatal(err)
	}
	var file []byte
	for i := range n {
		line, _ := json.Marshal(map[string]any{
			"email": fmt.Sprintf("user%d@example.com", i), "username": fmt.Sprintf("user%d", i),
			"password_hash": string(hash), "created_at": "2019-05-01T12:00:00Z", "email_verified": i%2 == 0,
		})
		file = append(append(file, line...), '\n')
	}
	const workers = 8
	for _, backend := range []string{"sqlite", "postgres"} {
		b.Run(backend, func(b *testing.B) {
			var importRate, sealedRate, appendRate float64
			for range b.N {
				store := openBenchStore(b, backend)
				im := userimport.New(store, store, domain.NewEventRegistry())
				start := time.Now()
				rep, err := im.Import(context.Background(), file, userimport.Options{Workers: workers})
				if err != nil || rep.Imported != n {
					b.Fatalf("import: %+v, %v", rep, err)
				}
				importRate = float64(n) / time.Since(start).Seconds()
				b.Logf("%s: checked %d rows in %v, wrote them in %v", backend, n, rep.Checked, rep.Elapsed-rep.Checked)

				// As idlog users import runs: through the personal-data store.
				_, sealedStore := openBenchStoreSealed(b, backend, true)
				start = time.Now()
				rep, err = userimport.New(sealedStore, sealedStore, domain.NewEventRegistry()).Import(context.Background(), file, userimport.Options{Workers: workers})
				if err != nil || rep.Imported != n {
					b.Fatalf("sealed import: %+v, %v", rep, err)
				}
				sealedRate = float64(n) / time.Since(start).Seconds()

				ref := openBenchStore(b, backend)
				appendRate = bareAppends(b, ref, n, workers)
			}
			b.ReportMetric(importRate, "users/s")
			b.ReportMetric(sealedRate, "sealed-users/s")
			b.ReportMetric(appendRate, "bare-appends/s")
			b.ReportMetric(importRate/appendRate, "ratio")
		})
	}
}

// bareAppends appends n one-event streams with the given writers and returns appends/s.
func bareAppends(b *testing.B, s eventstore.Store, n, workers int) float64 {
	b.Helper()
	data := json.RawMessage(`{"uid":"ID1234567890","email":"someone@example.com","username":"someone","password_hash":"$2a$04$abcdefghijklmnopqrstuu5s2v8.9qZ8C5aJz2pTqfQy3xZ1aXzGq","role":"member"}`)
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(n) {
					return
				}
				_, err := s.Append(context.Background(), eventstore.Append{
					Stream: fmt.Sprintf("user-ref%d", i), Expected: eventstore.NoStream,
					Events: []eventstore.NewEvent{{Type: "UserRegistered", SchemaVersion: 1, Data: data, Metadata: eventstore.Metadata{ActorUID: eventstore.ActorImport}}},
					Claim:  []string{fmt.Sprintf("email:ref%d@example.com", i)},
				})
				if err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return float64(n) / time.Since(start).Seconds()
}
