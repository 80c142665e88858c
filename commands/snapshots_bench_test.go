package commands_test

import (
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/idlog/idlog/commands"
	"github.com/idlog/idlog/domain"
)

// BenchmarkColdLoad measures loading a user for a command, with a history of IDLOG_BENCH_HISTORY
// sign-ins (default 10,000), when the process does not hold them in memory (a new replica, or one
// evicted from the cache): folding every event, or reading the snapshot and the events after it;
// and when it does (cached). heavy/fresh compares with a user of one sign-in loaded the same way
// in the same run.
func BenchmarkColdLoad(b *testing.B) {
	history := 10000
	if n, err := strconv.Atoi(os.Getenv("IDLOG_BENCH_HISTORY")); err == nil && n > 0 {
		history = n
	}
	for _, name := range []string{"sqlite", "postgres"} {
		open := benchStores(b)[name]
		b.Run(name, func(b *testing.B) {
			store := open(b).(snapshotStore)
			heavy, fresh := domain.UserID("ID00000000AA"), domain.UserID("ID00000000BB")
			newHistory(b, store, heavy, history)
			newHistory(b, store, fresh, 1)
			// A tail after the last snapshot, as a live user has.
			appendEvents(b, store, heavy, signIns("tail", history, 30)...)
			for _, mode := range []struct {
				name         string
				cache, every int
			}{{"events", -1, -1}, {"snapshot", -1, 100}, {"cached", 0, 100}} {
				b.Run(mode.name, func(b *testing.B) {
					// Without the cache every load is a cold one; with it, a load reads the
					// (empty) tail and copies the cached user.
					streams := newStreams(b, store, commands.StreamsConfig{CacheSize: mode.cache, SnapshotEvery: mode.every})
					for _, uid := range []domain.UserID{heavy, fresh} { // saves the snapshots, if any
						if _, err := commands.LoadUser(b.Context(), streams, uid); err != nil {
							b.Fatal(err)
						}
					}
					var took [2]time.Duration
					b.ResetTimer()
					for range b.N {
						for i, uid := range []domain.UserID{fresh, heavy} {
							start := time.Now()
							if _, err := commands.LoadUser(b.Context(), streams, uid); err != nil {
								b.Fatal(err)
							}
							took[i] += time.Since(start)
						}
					}
					b.ReportMetric(float64(took[0].Microseconds())/float64(b.N), "fresh-µs")
					b.ReportMetric(float64(took[1].Microseconds())/float64(b.N), "heavy-µs")
					b.ReportMetric(float64(took[1])/float64(took[0]), "heavy/fresh")
				})
			}
		})
	}
}
