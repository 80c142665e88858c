//go:build faults

package faults_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// nginxBinary finds nginx. When IDLOG_TEST_NGINX names it (CI installs nginx and sets it), a
// missing nginx fails the test instead of skipping it.
func nginxBinary(t *testing.T) string {
	t.Helper()
	if want := os.Getenv("IDLOG_TEST_NGINX"); want != "" {
		if _, err := os.Stat(want); err != nil {
			t.Fatalf("IDLOG_TEST_NGINX=%s: %v", want, err)
		}
		return want
	}
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx"
	}
	t.Skip("nginx is not installed (apt-get install nginx-light); set IDLOG_TEST_NGINX to require it")
	return ""
}

// startNginx runs a real nginx with the site configuration docker-compose.yml uses
// (deploy/nginx.conf), its upstream servers pointed at the given replicas and its listener at
// a free port. It returns the address it listens on and the path of its access log, which names
// the upstream that answered each request.
func startNginx(t *testing.T, upstreams ...string) (string, string) {
	t.Helper()
	bin := nginxBinary(t)
	site, err := os.ReadFile(filepath.Join("..", "deploy", "nginx.conf"))
	if err != nil {
		t.Fatal(err)
	}
	servers := regexp.MustCompile(`(?m)^\s*server\s+idlog[^;]*;\n`)
	if n := len(servers.FindAll(site, -1)); n != len(upstreams) {
		t.Fatalf("deploy/nginx.conf names %d upstream servers, the test runs %d replicas", n, len(upstreams))
	}
	i := 0
	site = servers.ReplaceAllFunc(site, func([]byte) []byte {
		i++
		return fmt.Appendf(nil, "    server %s max_fails=3 fail_timeout=5s;\n", upstreams[i-1])
	})
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	listen := regexp.MustCompile(`(?m)^\s*listen\s+8080;`)
	if !listen.Match(site) {
		t.Fatal("deploy/nginx.conf does not listen on 8080 as docker-compose.yml expects")
	}
	site = listen.ReplaceAll(site, []byte("    listen "+addr+";"))

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "idlog.conf"), site, 0o600); err != nil {
		t.Fatal(err)
	}
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;" // workers write their temp files into the test's directory
	}
	accessLog := filepath.Join(dir, "access.log")
	main := fmt.Sprintf(`%s
daemon off;
worker_processes 1;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log warn;
events { worker_connections 256; }
http {
    log_format upstream '$request_method $uri $status $upstream_addr';
    access_log %[3]s upstream;
    client_body_temp_path %[2]s/body;
    proxy_temp_path %[2]s/proxy;
    fastcgi_temp_path %[2]s/fastcgi;
    uwsgi_temp_path %[2]s/uwsgi;
    scgi_temp_path %[2]s/scgi;
    include %[2]s/idlog.conf;
}
`, user, dir, accessLog)
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(main), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-t", "-p", dir, "-c", conf, "-e", filepath.Join(dir, "error.log")).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t refuses deploy/nginx.conf: %v\n%s", err, out)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "-p", dir, "-c", conf, "-e", filepath.Join(dir, "error.log"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Logf("nginx error log:\n%s", b)
		}
	})
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get("http://" + addr + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return addr, accessLog
			}
		}
	}
	t.Fatal("nginx did not answer /healthz through the replicas in 10s")
	return "", ""
}

// upstreamCounts reads nginx's access log: how many requests each upstream answered.
func upstreamCounts(t *testing.T, accessLog string) map[string]int {
	t.Helper()
	f, err := os.Open(accessLog)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	counts := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 4 {
			// A request retried on the next upstream lists both: "a, b"; the last one answered.
			counts[fields[3]]++
		}
	}
	return counts
}

// TestNginxInFrontOfTwoReplicas runs docker-compose.yml's set-up with real processes: two
// `idlog serve` replicas on one PostgreSQL database and one NATS server, behind a real nginx with
// deploy/nginx.conf. Round robin spreads the requests over both; reads through the balancer see
// every write made through it; when one replica is killed with -9, nginx sends everything to the
// other and no request fails.
func TestNginxInFrontOfTwoReplicas(t *testing.T) {
	dsn, db := freshDatabase(t)
	port, dir := freePort(t), t.TempDir()
	ns := startNATS(t, port, dir)
	t.Cleanup(func() { ns.Shutdown() })
	keys := sharedKeys(t)
	var nodes []*node
	var addrs []string
	for range 2 {
		n := newNode(t, append(keys, "IDLOG_DATABASE_URL="+dsn, fmt.Sprintf("IDLOG_NATS_URL=nats://127.0.0.1:%d", port))...)
		nodes = append(nodes, n)
		addrs = append(addrs, n.addr)
	}
	for _, n := range nodes {
		n.launch()
	}
	for _, n := range nodes {
		n.waitHealthy()
	}
	lbAddr, accessLog := startNginx(t, addrs...)
	lb := &node{t: t, addr: lbAddr}

	u := signUp(t, lb, "nginx@example.com")
	if _, err := call(http.MethodPost, lb.url("/api/v2/resource/labels"), u.token, map[string]string{"key": "faults", "value": "start"}, nil); err != nil {
		t.Fatal(err)
	}
	lat, misses := writeThenRead(t, u, func(int) *node { return lb }, func(int) *node { return lb }, 60, "lb")
	if misses != 0 {
		t.Errorf("read-your-writes through nginx missed %d of 60", misses)
	}
	counts := upstreamCounts(t, accessLog)
	for _, a := range addrs {
		if counts[a] < 20 {
			t.Errorf("replica %s answered %d requests through nginx, want round robin to give it about half: %v", a, counts[a], counts)
		}
	}
	t.Logf("through nginx, both replicas up: write p50 %v p99 %v; requests per upstream %v", percentile(lat, .5), percentile(lat, .99), counts)

	// One replica dies: nginx must pass every request on to the other. Reads answer at once;
	// writes are read back once the survivor owns the projectors (the lease expires first).
	killedAt := time.Now()
	nodes[0].kill()
	failed := 0
	for i := range 40 {
		if st, err := call(http.MethodGet, lb.url("/api/v2/resource/users/me"), u.token, nil, nil); err != nil {
			failed++
			t.Logf("GET /users/me %d after the kill: %d %v", i, st, err)
		}
	}
	if o := owner(t, db, nodes, "projector.labels"); o != 1 {
		_, took := takeover(t, db, nodes, "projector.labels", 0, killedAt)
		t.Logf("the surviving replica took projector.labels over %v after the kill", took)
	}
	_, misses = writeThenRead(t, u, func(int) *node { return lb }, func(int) *node { return lb }, 20, "after-kill")
	if failed != 0 || misses != 0 {
		t.Errorf("with one replica killed, %d of 40 reads through nginx failed and %d of 20 write-then-read pairs missed; want 0 and 0", failed, misses)
	}
}
