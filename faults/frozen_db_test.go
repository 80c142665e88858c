//go:build faults

package faults_test

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	osuser "os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// privatePostgres is a PostgreSQL server of the test's own, in a temp dir on a free port, so the
// test may freeze or stop it without touching the machine's shared one.
type privatePostgres struct {
	dsn  string
	port int
	data string // its data directory
	bins pgBinaries
	cmd  *exec.Cmd
	done chan struct{}
}

// pgBinaries are the PostgreSQL server programs and a temp dir to run them in. PostgreSQL refuses
// to run as root, so as root they run as the postgres user.
type pgBinaries struct {
	bin, dir string
	cred     *syscall.Credential
}

// findPostgres finds the binaries in /usr/lib/postgresql/*/bin. Without them the test is skipped,
// loudly, except in CI (CI=true), where it fails.
func findPostgres(t *testing.T) pgBinaries {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	if len(bins) == 0 {
		msg := t.Name() + " SKIPPED: no PostgreSQL server binaries in /usr/lib/postgresql/*/bin (apt-get install postgresql)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	sort.Slice(bins, func(i, j int) bool { return pgMajor(bins[i]) < pgMajor(bins[j]) })
	b := pgBinaries{bin: filepath.Dir(bins[len(bins)-1])}

	dir, err := os.MkdirTemp("", "idlog-faults-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	b.dir = dir
	if os.Geteuid() == 0 {
		u, err := osuser.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root, and PostgreSQL refuses root: no postgres user to run it as: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		b.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// command runs one of the binaries in the temp dir, as postgres when the test runs as root.
func (b pgBinaries) command(name string, args ...string) *exec.Cmd {
	c := exec.Command(filepath.Join(b.bin, name), args...)
	c.Dir = b.dir
	c.SysProcAttr = &syscall.SysProcAttr{Credential: b.cred}
	return c
}

// startPrivatePostgres runs initdb and postgres: a server of the test's own.
func startPrivatePostgres(t *testing.T) *privatePostgres {
	t.Helper()
	b := findPostgres(t)
	data := filepath.Join(b.dir, "data")
	// trust, for local and host connections and for replication (initdb's pg_hba.conf has both).
	if out, err := b.command("initdb", "-D", data, "-U", "postgres", "-A", "trust", "--no-sync").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	p := &privatePostgres{bins: b, data: data, port: freePort(t)}
	p.dsn = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", p.port)
	p.start(t)
	return p
}

// start runs postgres on p's data directory and port, and waits until it accepts connections.
func (p *privatePostgres) start(t *testing.T) {
	t.Helper()
	p.done = make(chan struct{})
	p.cmd = p.bins.command("postgres", "-D", p.data, "-p", strconv.Itoa(p.port), "-k", p.bins.dir,
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "max_connections=60")
	logs := &lockedWriter{w: io.Discard}
	var buf strings.Builder
	if testing.Verbose() {
		logs.w = &buf
	}
	p.cmd.Stdout, p.cmd.Stderr = logs, logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := p.done
	go func() { _ = p.cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		select {
		case <-done:
			return // stopped by the test
		default:
		}
		_ = p.signal(syscall.SIGCONT)
		_ = p.cmd.Process.Signal(syscall.SIGQUIT) // immediate shutdown
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = p.signal(syscall.SIGKILL)
			<-done
		}
		if t.Failed() && buf.Len() > 0 {
			t.Logf("postgres output (%s):\n%s", p.data, buf.String())
		}
	})

	db, err := sql.Open("postgres", p.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	deadline := time.Now().Add(30 * time.Second)
	for db.Ping() != nil {
		if time.Now().After(deadline) {
			t.Fatal("the private PostgreSQL did not accept connections in 30s")
		}
		select {
		case <-done:
			t.Fatalf("the private PostgreSQL exited at start:\n%s", buf.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// stop shuts the server down (fast: sessions are ended) and waits for it.
func (p *privatePostgres) stop(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatal("the private PostgreSQL did not stop in 30s")
	}
}

func pgMajor(bin string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(bin))))
	return n
}

// signal sends sig to the postmaster, then to every process it started (backends are session
// leaders of their own, out of its process group, so they are found by their parent in /proc).
func (p *privatePostgres) signal(sig syscall.Signal) error {
	pid := p.cmd.Process.Pid
	if err := syscall.Kill(pid, sig); err != nil {
		return err
	}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, f := range stats {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid ...: comm may hold spaces, so read after its closing parenthesis.
		fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(fields) < 2 || fields[1] != strconv.Itoa(pid) {
			continue
		}
		child, _ := strconv.Atoi(filepath.Base(filepath.Dir(f)))
		if err := syscall.Kill(child, sig); err != nil && err != syscall.ESRCH {
			return err
		}
	}
	return nil
}

// A database frozen by SIGSTOP must not hold requests: each is answered 503 server.unavailable at
// its deadline, and once the database runs again requests succeed. Before the request deadline
// and the session timeouts, requests hung for as long as the database was frozen.
func TestFrozenDatabaseAnswers503(t *testing.T) {
	pg := startPrivatePostgres(t)
	nd := newNode(t, "IDLOG_DATABASE_URL="+pg.dsn, "IDLOG_NATS_PORT=0", "IDLOG_REQUEST_TIMEOUT=3s")
	nd.start()
	u := signUp(t, nd, "frozen@example.com")

	if err := pg.signal(syscall.SIGSTOP); err != nil {
		t.Fatalf("SIGSTOP the private PostgreSQL: %v", err)
	}
	frozen := true
	defer func() {
		if frozen {
			_ = pg.signal(syscall.SIGCONT)
		}
	}()
	// A generous bound keeps a regression from hanging the test; the status is what is checked.
	client := &http.Client{Timeout: 45 * time.Second}
	requests := []struct {
		method, path, body string
	}{
		{http.MethodGet, "/api/v2/resource/users/me", ""},
		{http.MethodPost, "/api/v2/resource/labels", `{"key":"frozen","value":"yes"}`},
		{http.MethodPost, "/api/v2/identity/sessions", `{"login":"frozen@example.com","password":"` + password + `"}`},
	}
	for _, r := range requests {
		status, body, err := send(client, r.method, nd.url(r.path), u.token, r.body)
		if err != nil {
			t.Fatalf("%s %s with the database frozen: no answer: %v", r.method, r.path, err)
		}
		if status != http.StatusServiceUnavailable || !strings.Contains(body, `"server.unavailable"`) {
			t.Errorf("%s %s with the database frozen = %d %s, want 503 server.unavailable", r.method, r.path, status, body)
		}
	}

	if err := pg.signal(syscall.SIGCONT); err != nil {
		t.Fatalf("SIGCONT the private PostgreSQL: %v", err)
	}
	frozen = false
	// Connections stuck while it was frozen are dropped; the next requests get fresh ones.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		status, body, err := send(client, http.MethodPost, nd.url("/api/v2/resource/labels"), u.token, `{"key":"thawed","value":"yes"}`)
		if err == nil && status == http.StatusCreated {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("after SIGCONT a label still fails: %d %s %v", status, body, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
	status, body, err := send(client, http.MethodGet, nd.url("/api/v2/resource/users/me"), u.token, "")
	if err != nil || status != http.StatusOK {
		t.Errorf("GET /users/me after SIGCONT = %d %s %v, want 200", status, body, err)
	}
}

func send(c *http.Client, method, url, token, body string) (int, string, error) {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}
