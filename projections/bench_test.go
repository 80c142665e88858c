package projections_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/idlog/idlog/auth"
	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/projections"
)

// Benchmarks of the users and activity projectors. Run one engine at a time, once:
//
//	go test ./projections -run '^$' -bench 'Rebuild/sqlite' -benchtime 1x
//	IDLOG_TEST_DATABASE_URL=postgres://... IDLOG_BENCH_EVENTS=1000000 go test ./projections -run '^$' -bench 'Rebuild/postgres' -benchtime 1x -timeout 1h
//	IDLOG_BENCH_RATE=1000 IDLOG_BENCH_SECONDS=10 go test ./projections -run '^$' -bench 'LiveLag' -benchtime 1x
//
// IDLOG_BENCH_EVENTS: events in the log to rebuild from (default 20000).
// IDLOG_BENCH_BATCH: the runtime's batch size (default projections.DefaultBatchSize).
// IDLOG_BENCH_REBUILD_BATCH: the rebuild's batch size (default projections.DefaultRebuildBatchSize).
// IDLOG_BENCH_LOG: when set, the runtime logs to stderr (each projector's rebuild time).
// IDLOG_BENCH_RATE and IDLOG_BENCH_SECONDS: the steady append rate and how long it lasts.

func envInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// fillLog appends about n events: users of twelve events each (a sign-up, then sign-ins,
// failures, profile changes, a label and a wallet credit), twelve events per append, from several
// writers at once.
func fillLog(b *testing.B, s eventstore.Store, n int) (last uint64, total int) {
	b.Helper()
	users := max(1, n/12)
	const writers = 8
	var mu sync.Mutex
	var wg sync.WaitGroup
	next := 0
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= users {
					return
				}
				uid := fmt.Sprintf("ID%010X", i+1)
				meta := userMeta(uid)
				events := []domain.Event{
					registered(uid, strings.ToLower(uid)+"@example.com", fmt.Sprintf("user%d", i)),
					domain.SessionStarted{SessionID: uuid.NewString(), At: at, ExpiresAt: at.Add(time.Hour)},
					domain.LoginFailed{Reason: domain.LoginFailureInvalidPassword, At: at},
					domain.SessionStarted{SessionID: uuid.NewString(), At: at, ExpiresAt: at.Add(time.Hour)},
					domain.EmailVerified{Email: strings.ToLower(uid) + "@example.com"},
					domain.UserDataUpdated{Data: json.RawMessage(`{"lang":"en"}`)},
					domain.PasswordChanged{PasswordHash: "$argon2id$v=19$changed"},
					domain.SessionEnded{SessionID: "s", Reason: domain.SessionEndPasswordChanged},
					domain.OTPEnabled{Step: 1},
					domain.UsernameChanged{To: fmt.Sprintf("renamed%d", i)},
					domain.LabelAdded{Key: "email", Value: "verified", Scope: domain.ScopePrivate},
					domain.WalletCredited{Balance: domain.BalanceFree, Amount: 100, Reason: domain.WalletReasonSignupBonus},
				}
				res, err := s.Append(context.Background(), eventstore.Append{Stream: domain.UserStreamPrefix + uid, Expected: eventstore.NoStream, Events: newEvents(b, meta, events...)})
				if err != nil {
					b.Error(err)
					return
				}
				mu.Lock()
				last, total = max(last, res.LastPosition), total+len(events)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	return last, total
}

// BenchmarkRebuild measures `idlog projections rebuild all` (every projector the command runs,
// together) from a log of IDLOG_BENCH_EVENTS events: events/s is the log's size
// over the time the rebuild took. Each round also scans the whole log raw (eventstore.Scanner)
// first, the reference in the same run: scan-events/s, and of-scan, the rebuild's rate as a share
// of it.
func BenchmarkRebuild(b *testing.B) {
	for _, be := range backends() {
		b.Run(be.name, func(b *testing.B) {
			n := envInt(b, "IDLOG_BENCH_EVENTS", 20000)
			e := be.open(b, envOptions{})
			start := time.Now()
			_, total := fillLog(b, e.store, n)
			b.Logf("%s: appended %d events in %s", be.name, total, time.Since(start).Round(time.Millisecond))
			users, activity := e.views()
			labels, wallet := projections.NewLabelsView(e.db, e.dialect), projections.NewWalletView(e.db, e.dialect)
			// Every projector `idlog projections rebuild all` runs (cmd/idlog openReadModels).
			var log *slog.Logger
			if os.Getenv("IDLOG_BENCH_LOG") != "" { // each projector's progress and time
				log = slog.New(slog.NewTextHandler(os.Stderr, nil))
			}
			r := e.runtime(b, projections.Options{BatchSize: envInt(b, "IDLOG_BENCH_BATCH", projections.DefaultBatchSize),
				RebuildBatchSize: envInt(b, "IDLOG_BENCH_REBUILD_BATCH", projections.DefaultRebuildBatchSize), Logger: log},
				users, activity, labels, wallet, projections.NewSessionsView(e.db, e.dialect),
				projections.NewUserProfilesView(e.db, e.dialect), projections.NewKYCView(e.db, e.dialect),
				projections.NewAPIKeysView(e.db, e.dialect), projections.NewPasswordClassesView(e.db, e.dialect, auth.CostClass))
			sc, ok := e.store.(eventstore.Scanner)
			if !ok {
				b.Fatalf("%s: the store is no eventstore.Scanner", be.name)
			}
			b.ResetTimer()
			var scanned, rebuilt time.Duration
			for range b.N {
				start := time.Now()
				seen := 0
				for _, err := range sc.ScanAll(context.Background(), 0) {
					if err != nil {
						b.Fatal(err)
					}
					seen++
				}
				if seen != total {
					b.Fatalf("the scan read %d events, want %d", seen, total)
				}
				scan := time.Since(start)
				start, cpu := time.Now(), processCPU(b)
				if err := r.Rebuild(context.Background(), r.Projectors()...); err != nil {
					b.Fatal(err)
				}
				d, used := time.Since(start), processCPU(b)-cpu
				scanned, rebuilt = scanned+scan, rebuilt+d
				b.Logf("%s: rebuilt all projectors from %d events in %s: %.0f events/s; raw scan %s: %.0f events/s (rebuild %.1f%% of the scan); this process used %s of CPU in the rebuild (%.1f cores)",
					be.name, total, d.Round(time.Millisecond), float64(total)/d.Seconds(), scan.Round(time.Millisecond),
					float64(total)/scan.Seconds(), 100*scan.Seconds()/d.Seconds(), used.Round(time.Millisecond), used.Seconds()/d.Seconds())
			}
			b.ReportMetric(float64(total*b.N)/rebuilt.Seconds(), "events/s")
			b.ReportMetric(float64(total*b.N)/scanned.Seconds(), "scan-events/s")
			b.ReportMetric(scanned.Seconds()/rebuilt.Seconds(), "of-scan")
			if got := count(b, e.db, "activity"); got != total {
				b.Fatalf("activity holds %d rows, want %d", got, total)
			}
			for _, t := range []struct{ table, projector string }{{"users", "users"}, {"user_labels", "labels"}, {"wallets", "wallet"}} {
				var got int
				if err := e.db.Get(&got, e.db.Rebind(`SELECT count(*) FROM `+t.table+` WHERE generation = (SELECT live FROM projection_generations WHERE name = ?)`), t.projector); err != nil {
					b.Fatal(err)
				}
				if want := total / 12; got != want {
					b.Fatalf("%s holds %d rows, want %d", t.table, got, want)
				}
			}
		})
	}
}

// processCPU is the CPU time (user and system) this process has used so far: on a shared machine,
// a rebuild's CPU beside its wall time tells how much of the time it was running.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkLiveLag appends one event at a steady IDLOG_BENCH_RATE per second for
// IDLOG_BENCH_SECONDS (a sign-in or a change of the user's data, half each), with the users and
// activity projectors live, and measures the time from an append's return (committed) to both
// read models showing it, and from the append's call.
func BenchmarkLiveLag(b *testing.B) {
	for _, be := range backends() {
		b.Run(be.name, func(b *testing.B) {
			rate := envInt(b, "IDLOG_BENCH_RATE", 1000)
			seconds := envInt(b, "IDLOG_BENCH_SECONDS", 5)
			e := be.open(b, envOptions{})
			last, _ := fillLog(b, e.store, 10000)
			users, activity := e.views()
			r := start(b, e.runtime(b, projections.Options{}, users, activity))
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := r.WaitFor(ctx, last); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for range b.N {
				var mu sync.Mutex
				var committed, called []time.Duration
				var late int
				var wg sync.WaitGroup
				sem := make(chan struct{}, 256)
				tick := time.NewTicker(time.Millisecond)
				begin := time.Now()
				end := begin.Add(time.Duration(seconds) * time.Second)
				// Appends go on, unmeasured, a little past the end, so the last measured ones see
				// the same steady traffic as the others.
				stop := end.Add(300 * time.Millisecond)
				at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
				sent := 0
				for now := range tick.C {
					if now.After(stop) {
						break
					}
					// As many appends as the rate owes by now: a tick the scheduler delayed does not
					// lower the rate.
					for due := int(now.Sub(begin).Seconds() * float64(rate)); sent < due; sent++ {
						measured := now.Before(end)
						select {
						case sem <- struct{}{}:
						default:
							if measured {
								late++ // the store cannot keep the rate: count it, do not queue
							}
							continue
						}
						wg.Add(1)
						go func() {
							defer wg.Done()
							defer func() { <-sem }()
							uid := fmt.Sprintf("ID%010X", 1+rand.IntN(10000/12)) // the users fillLog registered
							// Half the events change the user's row too, so both read models write.
							var ev domain.Event = domain.SessionStarted{SessionID: uuid.NewString(), At: at, ExpiresAt: at.Add(time.Hour)}
							if rand.IntN(2) == 0 {
								ev = domain.UserDataUpdated{Data: json.RawMessage(`{"n":1}`)}
							}
							t0 := time.Now()
							res, err := e.store.Append(ctx, eventstore.Append{Stream: domain.UserStreamPrefix + uid, Expected: eventstore.Any,
								Events: newEvents(b, userMeta(uid), ev)})
							if err != nil {
								b.Error(err)
								return
							}
							t1 := time.Now()
							if err := r.WaitFor(ctx, res.LastPosition); err != nil {
								b.Error(err)
								return
							}
							t2 := time.Now()
							if measured {
								mu.Lock()
								committed, called = append(committed, t2.Sub(t1)), append(called, t2.Sub(t0))
								mu.Unlock()
							}
						}()
					}
				}
				tick.Stop()
				wg.Wait()
				if b.Failed() {
					b.FailNow()
				}
				slices.Sort(committed)
				slices.Sort(called)
				pct := func(ds []time.Duration, p float64) time.Duration { return ds[min(len(ds)-1, int(float64(len(ds))*p))] }
				b.ReportMetric(float64(pct(committed, 0.99).Microseconds())/1000, "p99-ms")
				b.ReportMetric(float64(pct(committed, 0.50).Microseconds())/1000, "p50-ms")
				b.Logf("%s: %d appends at %d/s over %ds (%d skipped, the store was behind): commit->visible p50 %s p99 %s max %s; append call->visible p50 %s p99 %s",
					be.name, len(committed), rate, seconds, late,
					pct(committed, 0.5), pct(committed, 0.99), committed[len(committed)-1], pct(called, 0.5), pct(called, 0.99))
			}
		})
	}
}
