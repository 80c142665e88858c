//go:build faults

package faults_test

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/idlog/idlog/auth"
)

// launch starts `idlog serve` without waiting for it; waitHealthy waits.
func (n *node) launch() {
	n.t.Helper()
	if n.logs == nil {
		n.logs = &bytes.Buffer{}
	}
	n.cmd = exec.Command(binary, "serve")
	n.cmd.Env = n.env
	w := &lockedWriter{w: n.logs}
	n.cmd.Stdout, n.cmd.Stderr = w, w
	if err := n.cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	n.done = make(chan struct{})
	go func() { _ = n.cmd.Wait(); close(n.done) }()
}

func (n *node) waitHealthy() {
	n.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if !n.running() {
			n.t.Fatalf("idlog serve exited at start:\n%s", n.output())
		}
		if resp, err := http.Get(n.url("/healthz")); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	n.t.Fatalf("idlog serve did not answer /healthz in 60s:\n%s", n.output())
}

func (n *node) output() string { return n.logs.String() }

// freshDatabase makes a database of its own on the test PostgreSQL and returns its DSN.
func freshDatabase(t *testing.T) (string, *sql.DB) {
	t.Helper()
	base := os.Getenv("IDLOG_TEST_DATABASE_URL")
	if base == "" {
		t.Skip("IDLOG_TEST_DATABASE_URL is not set")
	}
	admin, err := sql.Open("postgres", base)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	name := fmt.Sprintf("idlog_replicas_%d", time.Now().UnixNano())
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = admin.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)") })
	dsn := strings.Replace(base, pathOf(base), "/"+name, 1)
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return dsn, db
}

// sharedKeys makes one set of key files for every replica, before they start, and returns the
// settings that point a replica at them.
func sharedKeys(t *testing.T) []string {
	t.Helper()
	keys := t.TempDir()
	signing, secret := filepath.Join(keys, "signing.pem"), filepath.Join(keys, "secret.key")
	events := filepath.Join(keys, "events.pem")
	for _, f := range []string{signing, events} {
		if _, err := auth.LoadOrCreateSigningKey(f); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := auth.LoadOrCreateKey(secret); err != nil {
		t.Fatal(err)
	}
	return []string{"IDLOG_SIGNING_KEY_FILE=" + signing, "IDLOG_SECRET_KEY_FILE=" + secret, "IDLOG_EVENTS_SIGNING_KEY_FILE=" + events}
}

// owner returns the index of the node that holds the lease of follower, -1 if none holds a live one.
func owner(t *testing.T, db *sql.DB, nodes []*node, follower string) int {
	t.Helper()
	var o string
	err := db.QueryRow(`SELECT owner FROM follower_leases WHERE name = $1 AND expires_at > now()`, follower).Scan(&o)
	if err == sql.ErrNoRows {
		return -1
	}
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(o, "/")
	if len(parts) < 3 {
		t.Fatalf("lease owner %q does not name a pid", o)
	}
	pid, _ := strconv.Atoi(parts[len(parts)-2])
	for i, n := range nodes {
		if n.cmd != nil && n.cmd.Process.Pid == pid {
			return i
		}
	}
	return -1
}

// takeover waits until a node other than old owns follower, and returns it and how long it took.
func takeover(t *testing.T, db *sql.DB, nodes []*node, follower string, old int, since time.Time) (int, time.Duration) {
	t.Helper()
	for time.Since(since) < 30*time.Second {
		if o := owner(t, db, nodes, follower); o >= 0 && o != old {
			return o, time.Since(since)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no replica took %s over from replica %d within 30s", follower, old)
	return -1, 0
}

func percentile(d []time.Duration, p float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// writeThenRead changes a label on one replica, then reads the labels on another, n times; it
// returns the write latencies and how many reads missed the write.
func writeThenRead(t *testing.T, u user, writeOn, readOn func(i int) *node, n int, run string) ([]time.Duration, int) {
	t.Helper()
	var lat []time.Duration
	misses := 0
	for i := range n {
		v := fmt.Sprintf("rw-%s-%d", run, i)
		start := time.Now()
		if _, err := call(http.MethodPatch, writeOn(i).url("/api/v2/resource/labels/faults"), u.token, map[string]string{"value": v}, nil); err != nil {
			t.Fatal(err)
		}
		lat = append(lat, time.Since(start))
		req, _ := http.NewRequest(http.MethodGet, readOn(i).url("/api/v2/resource/labels"), nil)
		req.Header.Set("Authorization", "Bearer "+u.token)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(b), `"`+v+`"`) {
			misses++
		}
	}
	return lat, misses
}

// TestThreeReplicas runs three `idlog serve` on one PostgreSQL database and one NATS server, all
// started at once: under a mixed load nothing logs an error, each event is published once, reads
// on one replica see writes answered by another, spends of one wallet spread over the replicas
// never conflict, and when the owner of the followers is killed or frozen another takes over.
func TestThreeReplicas(t *testing.T) {
	dsn, db := freshDatabase(t)
	port, dir := freePort(t), t.TempDir()
	ns := startNATS(t, port, dir)
	t.Cleanup(func() { ns.Shutdown() })
	natsURL := fmt.Sprintf("nats://127.0.0.1:%d", port)

	keys := sharedKeys(t)
	var nodes []*node
	for range 3 {
		nodes = append(nodes, newNode(t, append(keys, "IDLOG_DATABASE_URL="+dsn, "IDLOG_NATS_URL="+natsURL, "IDLOG_LOG_LEVEL=info")...))
	}
	// All at once, on an empty database.
	for _, n := range nodes {
		n.launch()
	}
	for _, n := range nodes {
		n.waitHealthy()
	}

	us := pool(t, nodes[0], "rep", 6)
	waitRelay(t, nodes[0], 30*time.Second)

	// The idle cost of three replicas is measured by TestIdleCost: a count must start well after
	// the last work, since PostgreSQL reports an idle backend's counts up to 10 s late.

	// Read-your-writes: 200 pairs written on one replica and read on the next, against 200 on
	// the owner of the projectors alone.
	own := owner(t, db, nodes, "projector.labels")
	if own < 0 {
		t.Fatal("nobody owns projector.labels")
	}
	single, singleMiss := writeThenRead(t, us[0], func(int) *node { return nodes[own] }, func(int) *node { return nodes[own] }, 200, "one")
	spread, spreadMiss := writeThenRead(t, us[1], func(i int) *node { return nodes[i%3] }, func(i int) *node { return nodes[(i+1)%3] }, 200, "spread")
	t.Logf("write latency, 1 replica: p50 %v p99 %v; spread over 3: p50 %v p99 %v (p99 ratio %.2f)",
		percentile(single, .5), percentile(single, .99), percentile(spread, .5), percentile(spread, .99),
		float64(percentile(spread, .99))/float64(percentile(single, .99)))
	if singleMiss != 0 || spreadMiss != 0 {
		t.Errorf("read-your-writes missed %d of 200 on one replica and %d of 200 across replicas, want 0", singleMiss, spreadMiss)
	}

	// 60 concurrent spends of one wallet over the three replicas.
	var conflicts, ok atomic.Int32
	var wg sync.WaitGroup
	for i := range 60 {
		wg.Go(func() {
			st, _ := call(http.MethodPost, nodes[i%3].url("/api/v2/resource/wallet/spend"), us[2].token, map[string]string{"amount": "1", "reference": fmt.Sprintf("hot-%d", i)}, nil)
			switch {
			case st == http.StatusConflict:
				conflicts.Add(1)
			case st/100 == 2:
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	if conflicts.Load() != 0 || ok.Load() != 60 {
		t.Errorf("60 spends over 3 replicas: %d succeeded, %d conflicts; want 60 and 0", ok.Load(), conflicts.Load())
	}

	// A mixed load on every replica while the owner of the followers is killed, then frozen.
	stop := make(chan struct{})
	var loads []*acked
	for i, n := range nodes {
		loads = append(loads, load(n, us[3:], 3, fmt.Sprintf("m%d", i), stop, func() bool { return false }))
	}
	time.Sleep(2 * time.Second)
	killed := owner(t, db, nodes, "projector.users")
	if killed < 0 {
		t.Fatal("nobody owns projector.users")
	}
	at := time.Now()
	nodes[killed].kill()
	next, tookKill := takeover(t, db, nodes, "projector.users", killed, at)
	t.Logf("kill -9 of replica %d: replica %d took projector.users over in %v", killed, next, tookKill)
	time.Sleep(2 * time.Second)

	frozen := owner(t, db, nodes, "projector.users")
	at = time.Now()
	_ = nodes[frozen].cmd.Process.Signal(syscall.SIGSTOP)
	next, tookStop := takeover(t, db, nodes, "projector.users", frozen, at)
	t.Logf("SIGSTOP of replica %d: replica %d took projector.users over in %v", frozen, next, tookStop)
	time.Sleep(2 * time.Second)
	_ = nodes[frozen].cmd.Process.Signal(syscall.SIGCONT)
	time.Sleep(2 * time.Second)
	close(stop)
	for _, a := range loads {
		a.wait()
	}
	// Generous bounds for a shared 2-core machine; the figures are logged above. A freeze that
	// lands inside one of the owner's transactions leaves the lease row locked; the standby ends
	// that transaction once it has been idle for the lease's TTL (lease.endStalled), which also
	// keeps the frozen owner's write from landing after the new owner's. Should that fail (a row
	// locked by several transactions, a role without the right to signal), PostgreSQL ends it at
	// idle_in_transaction_session_timeout (twice the request timeout: 20 s here): the bound after
	// SIGSTOP is that timeout plus the TTL. Before the standby ended such transactions, a CI run at
	// load saw 20.0 s once; most runs take about 3 s.
	if tookKill > 15*time.Second || tookStop > 25*time.Second {
		t.Errorf("takeover took %v after kill -9 (want under 15s) and %v after SIGSTOP (want under 25s)", tookKill, tookStop)
	}

	// Status names one owner per projector, and nothing is failing.
	var status []struct {
		Name, State, Owner string
	}
	if err := json.Unmarshal([]byte(nodes[next].idlog("projections", "status", "-json")), &status); err != nil {
		t.Fatal(err)
	}
	for _, s := range status {
		if s.Owner == "" || s.State == "failing" {
			t.Errorf("projections status of %s: state %q, owner %q; want an owner and no failure", s.Name, s.State, s.Owner)
		}
	}

	// The relay's owner has published the whole log before the replicas stop.
	deadline := time.Now().Add(time.Minute)
	for {
		var done bool
		err := db.QueryRow(`SELECT coalesce((SELECT position FROM checkpoints WHERE name = 'nats-relay'), 0) >= (SELECT max(position) FROM events)`).Scan(&done)
		if err != nil {
			t.Fatal(err)
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the relay did not publish the whole log within a minute")
		}
		time.Sleep(100 * time.Millisecond)
	}
	for i, n := range nodes {
		if i != killed {
			n.stop()
		}
	}
	log := readLog(t, "postgres", dsn, nodes[0].env)
	all := &acked{}
	for _, a := range loads {
		all.signups = append(all.signups, a.signups...)
		all.labels = append(all.labels, a.labels...)
		all.spends = append(all.spends, a.spends...)
	}
	checkAcked(t, log, all)
	checkStream(t, natsURL, envValue(nodes[0].env, "IDLOG_DATA_DIR"), log)
	for i, n := range nodes {
		for _, line := range strings.Split(n.logs.String(), "\n") {
			if !strings.Contains(line, "level=ERROR") {
				continue
			}
			// The replica frozen with SIGSTOP wakes up past the deadlines of what it was doing
			// (a code's hand-off to NATS, say): those are its own freeze's, and say so.
			// When the freeze outlasts the request timeout (a takeover that waits for the
			// idle-in-transaction timeout, see above), its requests in flight end at their
			// deadline too: 503 server.unavailable, context canceled.
			if i == frozen && (strings.Contains(line, "context deadline exceeded") || strings.Contains(line, "context canceled") ||
				strings.Contains(line, `msg="http request"`) && strings.Contains(line, "status=503")) {
				t.Logf("replica %d (the one frozen) logged, on waking: %s", i, line)
				continue
			}
			t.Errorf("replica %d logged an error: %s", i, line)
		}
	}
}
