//go:build faults

package faults_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/idlog/idlog/domain"
)

// pool signs n users up, each with the label the load changes and coins enough for any run
// (credited by an admin made with `idlog users create`, as an operator would).
func pool(t *testing.T, nd *node, run string, n int) []user {
	t.Helper()
	adminEmail := "admin-" + run + "@example.com"
	cmd := exec.Command(binary, "users", "create", "--email", adminEmail, "--password-stdin", "--role", "admin")
	cmd.Env, cmd.Stdin = nd.env, strings.NewReader(password+"\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("idlog users create: %v\n%s", err, out)
	}
	admin := signIn(t, nd, adminEmail)
	us := make([]user, n)
	for i := range us {
		us[i] = signUp(t, nd, fmt.Sprintf("pool-%s-%d@example.com", run, i))
		if _, err := call(http.MethodPost, nd.url("/api/v2/resource/labels"), us[i].token, map[string]string{"key": "faults", "value": "start"}, nil); err != nil {
			t.Fatal(err)
		}
		credit := map[string]string{"balance": "standard", "amount": "1000000", "reason": "deposit"}
		if _, err := call(http.MethodPost, nd.url("/api/v2/admin/wallets/"+us[i].uid+"/credits"), admin.token, credit, nil); err != nil {
			t.Fatal(err)
		}
	}
	return us
}

// snapshot is what the read models show of the pool users: the user with labels and balances,
// and their activity.
func snapshot(t *testing.T, nd *node, us []user) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, u := range us {
		for _, p := range []string{"/api/v2/resource/users/me", "/api/v2/resource/users/activity/all?limit=100"} {
			var v any
			if _, err := call(http.MethodGet, nd.url(p), u.token, nil, &v); err != nil {
				t.Fatal(err)
			}
			b, _ := json.Marshal(v)
			out[u.uid+" "+p] = string(b)
		}
	}
	return out
}

// foldWallets sums each user's credits and debits in the log.
func foldWallets(log []storedEvent) map[string]float64 {
	out := map[string]float64{}
	for _, e := range log {
		uid, err := domain.UserIDFromStream(e.Stream)
		if err != nil {
			continue
		}
		a, _ := e.Data["amount"].(float64)
		switch e.Type {
		case "WalletCredited":
			out[string(uid)] += a
		case "WalletDebited":
			out[string(uid)] -= a
		}
	}
	return out
}

// (a) kill -9 in the middle of a mixed load, then restart.
func TestKillDuringLoad(t *testing.T) {
	natsPort := freePort(t)
	nd := newNode(t, fmt.Sprintf("IDLOG_NATS_PORT=%d", natsPort))
	nd.start()
	us := pool(t, nd, "kill", 4)

	var acks []*acked
	for round := range 2 { // two kills: the second restart starts from a log the first left
		stop := make(chan struct{})
		a := load(nd, us, 8, fmt.Sprintf("k%d", round), stop, func() bool { return false })
		time.Sleep(1500 * time.Millisecond)
		nd.kill()
		time.Sleep(300 * time.Millisecond) // the workers see refused connections
		close(stop)
		a.wait()
		acks = append(acks, a)
		nd.start()
	}
	waitRelay(t, nd, time.Minute)
	waitProjections(t, nd, time.Minute)
	before := snapshot(t, nd, us)
	nd.stop()

	dbPath := filepath.Join(envValue(nd.env, "IDLOG_DATA_DIR"), "idlog.db")
	log := readLog(t, "sqlite", dbPath, nd.env)
	for _, a := range acks {
		checkAcked(t, log, a)
	}

	// The read models equal a fresh rebuild from the log.
	out := nd.idlog("projections", "rebuild", "all")
	t.Logf("rebuild: %s", strings.TrimSpace(out))
	nd.start()
	after := snapshot(t, nd, us)
	for k, v := range before {
		if after[k] != v {
			t.Errorf("read model of %s differs after a rebuild:\nbefore %.300s\nafter  %.300s", k, v, after[k])
		}
	}
	// And the balances they show equal a fold of the log.
	wallets := foldWallets(log)
	for _, u := range us {
		var me struct {
			Free     float64 `json:"wallet_free"`
			Standard float64 `json:"wallet_standard"`
		}
		if _, err := call(http.MethodGet, nd.url("/api/v2/resource/users/me"), u.token, nil, &me); err != nil {
			t.Fatal(err)
		}
		if me.Free+me.Standard != wallets[u.uid] {
			t.Errorf("user %s: the read model shows %v coins, the log sums to %v", u.uid, me.Free+me.Standard, wallets[u.uid])
		}
	}
	waitRelay(t, nd, time.Minute)
	nd.stop()
	log = readLog(t, "sqlite", dbPath, nd.env)
	nd.start() // the embedded NATS runs inside idlog
	dataDir := envValue(nd.env, "IDLOG_DATA_DIR")
	reader, err := nats.NkeyOptionFromSeed(filepath.Join(dataDir, "keys", "nats-reader.nk"))
	if err != nil {
		t.Fatal(err)
	}
	checkStream(t, fmt.Sprintf("nats://127.0.0.1:%d", natsPort), dataDir, log, reader)
}

func envValue(env []string, name string) string {
	v := ""
	for _, kv := range env {
		if k, val, ok := strings.Cut(kv, "="); ok && k == name {
			v = val
		}
	}
	return v
}

// startNATS runs a JetStream server in the test process on port, its files in dir.
func startNATS(t *testing.T, port int, dir string) *server.Server {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: dir, NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	return s
}

// (b) NATS stopped under load: commands keep succeeding, and once it is back the relay catches
// up with every event once.
func TestNATSStoppedDuringLoad(t *testing.T) {
	port, dir := freePort(t), t.TempDir()
	ns := startNATS(t, port, dir)
	t.Cleanup(func() { ns.Shutdown() })
	natsURL := fmt.Sprintf("nats://127.0.0.1:%d", port)
	nd := newNode(t, "IDLOG_NATS_URL="+natsURL)
	nd.start()
	us := pool(t, nd, "nats", 4)
	waitRelay(t, nd, 30*time.Second)

	var down atomic.Bool
	stop := make(chan struct{})
	a := load(nd, us, 8, "n", stop, down.Load)
	time.Sleep(time.Second)
	ns.Shutdown()
	ns.WaitForShutdown()
	down.Store(true)
	time.Sleep(3 * time.Second)
	down.Store(false)
	ns = startNATS(t, port, dir)
	time.Sleep(time.Second)
	close(stop)
	a.wait()

	okDown := 0
	for st, c := range a.inWindow {
		if st/100 == 2 {
			okDown += c
		} else {
			t.Errorf("while NATS was down %d requests got %d, want every one 2xx", c, st)
		}
	}
	if okDown == 0 {
		t.Error("no request was answered while NATS was down")
	}
	waitRelay(t, nd, time.Minute)
	nd.stop()
	log := readLog(t, "sqlite", filepath.Join(envValue(nd.env, "IDLOG_DATA_DIR"), "idlog.db"), nd.env)
	checkAcked(t, log, a)
	checkStream(t, natsURL, envValue(nd.env, "IDLOG_DATA_DIR"), log)
	t.Logf("%d requests answered 2xx while NATS was down", okDown)
}

// (c) PostgreSQL connections cut under load. The machine's one PostgreSQL serves everyone, so
// instead of restarting it the test terminates every backend of its own fresh database again and
// again: requests may fail, but only with 503 and without a partial write, and they succeed again
// once the cutting stops, without restarting idlog.
func TestPostgresConnectionsCut(t *testing.T) {
	base := os.Getenv("IDLOG_TEST_DATABASE_URL")
	if base == "" {
		t.Skip("IDLOG_TEST_DATABASE_URL is not set")
	}
	admin, err := sql.Open("postgres", base)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	dbName := fmt.Sprintf("idlog_faults_%d", time.Now().UnixNano())
	if _, err := admin.Exec("CREATE DATABASE " + dbName); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = admin.Exec("DROP DATABASE IF EXISTS " + dbName + " WITH (FORCE)") })
	dsn := strings.Replace(base, pathOf(base), "/"+dbName, 1)

	nd := newNode(t, "IDLOG_DATABASE_URL="+dsn, "IDLOG_NATS_PORT=0")
	nd.start()
	us := pool(t, nd, "pg", 4)

	var cutting atomic.Bool
	stop := make(chan struct{})
	a := load(nd, us, 8, "p", stop, cutting.Load)
	time.Sleep(time.Second)
	cutting.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	cuts := 0
	for ctx.Err() == nil {
		var n int
		if err := admin.QueryRowContext(ctx, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", dbName).Scan(&n); err == nil {
			cuts += n
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	cutting.Store(false)
	time.Sleep(500 * time.Millisecond) // let requests in flight during the last cut finish
	a.mu.Lock()
	afterStart := map[int]int{}
	for k, v := range a.statuses {
		afterStart[k] = v
	}
	a.mu.Unlock()
	time.Sleep(2 * time.Second)
	close(stop)
	a.wait()

	for st, c := range a.inWindow {
		if st/100 != 2 && st != http.StatusServiceUnavailable {
			t.Errorf("while connections were cut %d requests got %d, want 2xx or 503", c, st)
		}
	}
	// After the cutting: everything answered 2xx.
	for st, c := range a.statuses {
		if st/100 != 2 && c > afterStart[st] {
			t.Errorf("after the cutting stopped %d requests still got %d", c-afterStart[st], st)
		}
	}
	if a.statuses[200]+a.statuses[201] <= afterStart[200]+afterStart[201] {
		t.Error("no request succeeded after the cutting stopped")
	}
	t.Logf("terminated %d backends; answers while cutting: %v", cuts, a.inWindow)
	nd.stop()
	checkAcked(t, readLog(t, "postgres", dsn, nd.env), a)
}

func pathOf(dsn string) string {
	i := strings.Index(dsn, "://")
	rest := dsn[i+3:]
	j := strings.Index(rest, "/")
	k := strings.IndexAny(rest[j:], "?")
	if k < 0 {
		return rest[j:]
	}
	return rest[j : j+k]
}
