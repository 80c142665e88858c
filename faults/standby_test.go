//go:build faults

package faults_test

import (
	"bufio"
	"database/sql"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// startStandby makes a streaming replica of p with pg_basebackup -R (standby.signal and
// primary_conninfo written for it) and runs it, a hot standby, on a free port.
func (p *privatePostgres) startStandby(t *testing.T) *privatePostgres {
	t.Helper()
	data := filepath.Join(p.bins.dir, "standby")
	out, err := p.bins.command("pg_basebackup", "-h", "127.0.0.1", "-p", strconv.Itoa(p.port), "-U", "postgres",
		"-D", data, "-R", "-X", "stream", "-c", "fast", "--no-sync").CombinedOutput()
	if err != nil {
		t.Fatalf("pg_basebackup from the private PostgreSQL (it needs replication connections in pg_hba.conf, "+
			"wal_level replica and max_wal_senders > 0, initdb's defaults): %v\n%s", err, out)
	}
	s := &privatePostgres{bins: p.bins, data: data, port: freePort(t)}
	s.dsn = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.port)
	s.start(t)
	return s
}

// onDatabase is dsn with its database replaced.
func onDatabase(dsn, db string) string { return strings.Replace(dsn, "/postgres?", "/"+db+"?", 1) }

// metricValue reads one sample of idlog's /metrics, such as
// idlog_read_replica_reads_total{database="replica"}; 0 if absent.
func metricValue(t *testing.T, n *node, sample string) float64 {
	t.Helper()
	resp, err := http.Get(n.url("/metrics"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), sample+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %v", sample, err)
			}
			return f
		}
	}
	return 0
}

// pairs changes u's label on n, then reads GET /users/me on n, count times; it returns how long
// each pair took and how many reads did not show the value just written. It may run on several
// goroutines at once.
func pairs(t *testing.T, n *node, u user, run string, count int) ([]time.Duration, int) {
	t.Helper()
	var took []time.Duration
	misses := 0
	for i := range count {
		v := fmt.Sprintf("%s-%d", run, i)
		start := time.Now()
		if _, err := call(http.MethodPatch, n.url("/api/v2/resource/labels/standby"), u.token, map[string]string{"value": v}, nil); err != nil {
			t.Error(err)
			return took, misses
		}
		req, _ := http.NewRequest(http.MethodGet, n.url("/api/v2/resource/users/me"), nil)
		req.Header.Set("Authorization", "Bearer "+u.token)
		resp, err := hc.Do(req)
		if err != nil {
			t.Error(err)
			return took, misses
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		took = append(took, time.Since(start))
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET /users/me = %d %s", resp.StatusCode, b)
			return took, misses
		}
		if !strings.Contains(string(b), `"`+v+`"`) {
			misses++
		}
	}
	return took, misses
}

// userScans counts the scans of the users read model on a server, as its statistics show them.
func userScans(t *testing.T, db *sql.DB) int64 {
	t.Helper()
	var n int64
	if err := db.QueryRow(`SELECT coalesce(sum(coalesce(seq_scan, 0) + coalesce(idx_scan, 0)), 0)::bigint
		FROM pg_stat_user_tables WHERE relname = 'users'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// With IDLOG_READ_DATABASE_URL naming a real streaming replica (pg_basebackup of a private
// PostgreSQL), a read right after a write finds it every time, the reads are answered by the
// replica; with its replay paused (lag), the replica frozen or stopped they are answered by the
// primary, still right; when it catches up or comes back, reads go to it again. The write-then-read p50 is reported beside the same pairs on a
// replica-less idlog on the same primary, in the same run.
func TestReadReplica(t *testing.T) {
	primary := startPrivatePostgres(t)
	admin, err := sql.Open("postgres", primary.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	for _, db := range []string{"idlog_plain", "idlog_routed"} {
		if _, err := admin.Exec("CREATE DATABASE " + db); err != nil {
			t.Fatal(err)
		}
	}
	standby := primary.startStandby(t)
	standbyDB, err := sql.Open("postgres", onDatabase(standby.dsn, "idlog_routed"))
	if err != nil {
		t.Fatal(err)
	}
	defer standbyDB.Close()

	plain := newNode(t, "IDLOG_DATABASE_URL="+onDatabase(primary.dsn, "idlog_plain"), "IDLOG_NATS_PORT=0")
	routed := newNode(t, "IDLOG_DATABASE_URL="+onDatabase(primary.dsn, "idlog_routed"), "IDLOG_NATS_PORT=0",
		"IDLOG_READ_DATABASE_URL="+onDatabase(standby.dsn, "idlog_routed"), "IDLOG_REQUEST_TIMEOUT=4s")
	plain.start()
	routed.start()
	users := map[*node]user{}
	for _, n := range []*node{plain, routed} {
		u := signUp(t, n, "standby@example.com")
		if _, err := call(http.MethodPost, n.url("/api/v2/resource/labels"), u.token, map[string]string{"key": "standby", "value": "start"}, nil); err != nil {
			t.Fatal(err)
		}
		users[n] = u
	}

	// 150 write-then-read pairs on each, interleaved so both see the same machine load.
	const rounds = 150
	replicaReads0 := metricValue(t, routed, `idlog_read_replica_reads_total{database="replica"}`)
	scans0 := userScans(t, standbyDB)
	var plainTook, routedTook []time.Duration
	routedMisses, plainMisses := 0, 0
	for i := range rounds {
		took, miss := pairs(t, plain, users[plain], fmt.Sprintf("plain-%d", i), 1)
		plainTook, plainMisses = append(plainTook, took...), plainMisses+miss
		took, miss = pairs(t, routed, users[routed], fmt.Sprintf("routed-%d", i), 1)
		routedTook, routedMisses = append(routedTook, took...), routedMisses+miss
	}
	if routedMisses != 0 || plainMisses != 0 {
		t.Errorf("reads that missed the write just answered: %d of %d through the replica, %d of %d without one; want 0",
			routedMisses, rounds, plainMisses, rounds)
	}
	replicaReads := metricValue(t, routed, `idlog_read_replica_reads_total{database="replica"}`) - replicaReads0
	if replicaReads < rounds {
		t.Errorf("the replica answered %.0f reads of %d GET /users/me, want all (/metrics)", replicaReads, rounds)
	}
	// The standby's own statistics, flushed by its backends within seconds, agree.
	deadline := time.Now().Add(20 * time.Second)
	scans := userScans(t, standbyDB) - scans0
	for scans < rounds && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		scans = userScans(t, standbyDB) - scans0
	}
	if scans < rounds {
		t.Errorf("the standby's statistics show %d scans of users during %d reads, want at least %d", scans, rounds, rounds)
	}
	p50Plain, p50Routed := percentile(plainTook, .5), percentile(routedTook, .5)
	t.Logf("write-then-read p50: %v with the read replica, %v without (ratio %.2f); p99 %v and %v; %d pairs each, interleaved",
		p50Routed, p50Plain, float64(p50Routed)/float64(p50Plain), percentile(routedTook, .99), percentile(plainTook, .99), rounds)

	// Concurrent pairs of several users: the waits share one poller of the replay position.
	const workers, perWorker = 6, 20
	var wg sync.WaitGroup
	var concurrentMisses atomic.Int64
	for w := range workers {
		u := signUp(t, routed, fmt.Sprintf("standby-%d@example.com", w))
		if _, err := call(http.MethodPost, routed.url("/api/v2/resource/labels"), u.token, map[string]string{"key": "standby", "value": "start"}, nil); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, misses := pairs(t, routed, u, fmt.Sprintf("concurrent-%d", w), perWorker)
			concurrentMisses.Add(int64(misses))
		}()
	}
	wg.Wait()
	if n := concurrentMisses.Load(); n != 0 {
		t.Errorf("%d of %d concurrent reads missed the write just answered, want 0", n, workers*perWorker)
	}

	// Replay paused: the replica lags. Reads go to the primary (reason lag) and see every write.
	if _, err := standbyDB.Exec(`SELECT pg_wal_replay_pause()`); err != nil {
		t.Fatal(err)
	}
	lag0 := metricValue(t, routed, `idlog_read_replica_fallbacks_total{reason="lag"}`)
	const pausedRounds = 30
	took, misses := pairs(t, routed, users[routed], "paused", pausedRounds)
	if misses != 0 {
		t.Errorf("with the standby's replay paused, %d of %d reads missed the write just answered, want 0", misses, pausedRounds)
	}
	if got := metricValue(t, routed, `idlog_read_replica_fallbacks_total{reason="lag"}`) - lag0; got < pausedRounds {
		t.Errorf("with the standby's replay paused, %.0f reads of %d went to the primary for lag, want all", got, pausedRounds)
	}
	if !strings.Contains(routed.output(), "the read replica lags; reading the primary") {
		t.Errorf("no log line says the replica lags:\n%s", routed.output())
	}
	t.Logf("with replay paused: write-then-read p50 %v (the first pair waits IDLOG_READ_MAX_WAIT, the next ones a few ms)", percentile(took, .5))
	if _, err := standbyDB.Exec(`SELECT pg_wal_replay_resume()`); err != nil {
		t.Fatal(err)
	}
	backOnReplica(t, routed, users[routed], "resumed")

	// The standby freezes (SIGSTOP), as when cut off without a reset: a read that finds it caught
	// up waits half its deadline for it, then reads the primary; the next reads go to the primary
	// at once, and still see every write.
	if err := standby.signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	frozen := true
	defer func() {
		if frozen {
			_ = standby.signal(syscall.SIGCONT)
		}
	}()
	down0 := metricValue(t, routed, `idlog_read_replica_fallbacks_total{reason="down"}`)
	for range 3 {
		status, body, err := send(hc, http.MethodGet, routed.url("/api/v2/resource/users/me"), users[routed].token, "")
		if err != nil || status != http.StatusOK || !strings.Contains(body, `"resumed-after-19"`) {
			t.Errorf("GET /users/me with the standby frozen = %d %s %v, want 200 with the last label value", status, body, err)
		}
	}
	if _, misses := pairs(t, routed, users[routed], "frozen", 10); misses != 0 {
		t.Errorf("with the standby frozen, %d of 10 reads missed the write just answered, want 0", misses)
	}
	if metricValue(t, routed, `idlog_read_replica_fallbacks_total{reason="down"}`) == down0 {
		t.Error("with the standby frozen, idlog_read_replica_fallbacks_total{reason=\"down\"} did not move")
	}
	if err := standby.signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	frozen = false
	backOnReplica(t, routed, users[routed], "thawed")

	// The standby stops: reads fall back to the primary and still see every write.
	standby.stop(t)
	primaryReads0 := metricValue(t, routed, `idlog_read_replica_reads_total{database="primary"}`)
	down0 = metricValue(t, routed, `idlog_read_replica_fallbacks_total{reason="down"}`)
	const downRounds = 30
	_, misses = pairs(t, routed, users[routed], "down", downRounds)
	if misses != 0 {
		t.Errorf("with the standby stopped, %d of %d reads missed the write just answered, want 0", misses, downRounds)
	}
	if got := metricValue(t, routed, `idlog_read_replica_reads_total{database="primary"}`) - primaryReads0; got < downRounds {
		t.Errorf("with the standby stopped, the primary answered %.0f reads of %d, want all", got, downRounds)
	}
	if metricValue(t, routed, `idlog_read_replica_fallbacks_total{reason="down"}`) == down0 {
		t.Error("with the standby stopped, idlog_read_replica_fallbacks_total{reason=\"down\"} did not move")
	}
	if !strings.Contains(routed.output(), "the read replica failed; reads go to the primary") {
		t.Errorf("no log line says the reads went to the primary:\n%s", routed.output())
	}

	// It comes back: reads go to it again, and still see every write.
	standby.start(t)
	backOnReplica(t, routed, users[routed], "back")
}

// backOnReplica runs write-then-read pairs until the replica answers reads again, then 20 more,
// and checks that no read missed its write.
func backOnReplica(t *testing.T, n *node, u user, run string) {
	t.Helper()
	sample := `idlog_read_replica_reads_total{database="replica"}`
	before := metricValue(t, n, sample)
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; metricValue(t, n, sample) == before; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("%s: after 30s reads still go to the primary", run)
		}
		if _, misses := pairs(t, n, u, fmt.Sprintf("%s-%d", run, i), 1); misses != 0 {
			t.Errorf("%s: a read missed the write just answered", run)
		}
		time.Sleep(50 * time.Millisecond)
	}
	before = metricValue(t, n, sample)
	if _, misses := pairs(t, n, u, run+"-after", 20); misses != 0 {
		t.Errorf("%s: once the replica answers again, %d of 20 reads missed the write just answered, want 0", run, misses)
	}
	if got := metricValue(t, n, sample) - before; got < 20 {
		t.Errorf("%s: the replica answered %.0f of 20 reads once back, want all", run, got)
	}
}
