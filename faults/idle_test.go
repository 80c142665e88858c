//go:build faults

package faults_test

import (
	"database/sql"
	"fmt"
	"testing"
	"time"
)

// idleRate counts the transactions of every connection to db's database over d, after letting
// what came before settle (and vacuuming, so that autovacuum does not count): PostgreSQL 15 reports the counts of a backend that went idle up to
// 10 s late, so the work before must be reported before the count starts.
func idleRate(t *testing.T, db *sql.DB, d time.Duration) float64 {
	t.Helper()
	// Autovacuum's transactions count too: leave it nothing to do on the fresh database.
	if _, err := db.Exec(`VACUUM ANALYZE`); err != nil {
		t.Fatal(err)
	}
	time.Sleep(12 * time.Second)
	q := `SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()`
	var before, after int64
	if err := db.QueryRow(q).Scan(&before); err != nil {
		t.Fatal(err)
	}
	time.Sleep(d)
	if err := db.QueryRow(q).Scan(&after); err != nil {
		t.Fatal(err)
	}
	// Our own two reads are counted too.
	return float64(after-before-1) / d.Seconds()
}

// TestIdleCost measures what idlog costs PostgreSQL while nobody uses it, with one replica and
// with three on one database, and the write-then-read latency on one replica in the same run.
// Followers wait on a wake-up (a commit in the process, a NOTIFY from another), not on a poll,
// and each process renews all of its leases in one statement: an idle replica costs at most a
// couple of transactions a second.
func TestIdleCost(t *testing.T) {
	dsn, db := freshDatabase(t)
	port, dir := freePort(t), t.TempDir()
	ns := startNATS(t, port, dir)
	t.Cleanup(func() { ns.Shutdown() })
	natsURL := fmt.Sprintf("nats://127.0.0.1:%d", port)
	keys := sharedKeys(t)
	var nodes []*node
	for range 3 {
		nodes = append(nodes, newNode(t, append(keys, "IDLOG_DATABASE_URL="+dsn, "IDLOG_NATS_URL="+natsURL)...))
	}

	nodes[0].launch()
	nodes[0].waitHealthy()
	us := pool(t, nodes[0], "idle", 1)
	waitRelay(t, nodes[0], 30*time.Second)
	const span = 20 * time.Second
	one := idleRate(t, db, span)

	lat, miss := writeThenRead(t, us[0], func(int) *node { return nodes[0] }, func(int) *node { return nodes[0] }, 200, "idle")
	if miss != 0 {
		t.Errorf("read-your-writes missed %d of 200 on one replica, want 0", miss)
	}

	nodes[1].launch()
	nodes[2].launch()
	nodes[1].waitHealthy()
	nodes[2].waitHealthy()
	three := idleRate(t, db, span)
	t.Logf("idle: %.1f transactions/s for 1 replica, %.1f for 3; write-then-read on 1 replica: p50 %v p99 %v",
		one, three, percentile(lat, .5), percentile(lat, .99))
}
