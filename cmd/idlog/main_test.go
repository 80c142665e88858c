package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/eventstore/sqlite"
	"github.com/idlog/idlog/migrations"
)

// runAsBinary makes the test binary act as idlog when a test starts it with this variable, so
// main itself, signals included, is tested without building the binary separately.
const runAsBinary = "IDLOG_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runAsBinary) == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// syncBuffer is a bytes.Buffer that a command and a test may use at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// runIdlog runs idlog in-process with only the given environment and returns its exit status,
// stdout and stderr.
func runIdlog(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr syncBuffer
	code := run(t.Context(), args, &environment{stdout: &stdout, stderr: &stderr, getenv: func(k string) string { return env[k] }})
	return code, stdout.String(), stderr.String()
}

func TestUsage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args       []string
		wantCode   int
		wantStderr string
	}{
		{nil, 2, "Commands:\n  serve"},
		{[]string{"-h"}, 0, "migrate"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"serve", "-bogus"}, 2, "flag provided but not defined: -bogus"},
		{[]string{"migrate", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"serve", "-h"}, 0, "-http-addr host:port"},
	}
	for _, tt := range tests {
		code, _, stderr := runIdlog(t, nil, tt.args...)
		if code != tt.wantCode || !strings.Contains(stderr, tt.wantStderr) {
			t.Errorf("idlog %q = %d, stderr %q; want %d and %q", tt.args, code, stderr, tt.wantCode, tt.wantStderr)
		}
	}
}

func TestBadConfigurationStopsAtStart(t *testing.T) {
	t.Parallel()
	for _, cmd := range []string{"serve", "migrate"} {
		code, _, stderr := runIdlog(t, map[string]string{"IDLOG_HTTP_ADDR": "x", "IDLOG_LOG_LEVEL": "loud"}, cmd)
		if code != 1 {
			t.Errorf("idlog %s exit status = %d, want 1", cmd, code)
		}
		for _, want := range []string{`invalid IDLOG_HTTP_ADDR "x"`, `invalid IDLOG_LOG_LEVEL "loud"`} {
			if !strings.Contains(stderr, want) {
				t.Errorf("idlog %s stderr = %q, want %q", cmd, stderr, want)
			}
		}
	}
}

// A database that cannot be reached fails the start, and the error does not show the password.
func TestUnreachableDatabaseNeverShowsPassword(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now: connections are refused at once
	tests := []struct {
		env  map[string]string
		cmds []string
	}{
		{map[string]string{"IDLOG_DATABASE_URL": "postgres://idlog:hunter2@" + addr + "/idlog?sslmode=disable&connect_timeout=5"}, []string{"serve", "migrate"}},
		{map[string]string{"IDLOG_EVENTSTORE_URL": "esdb://admin:hunter2@" + addr + "?tls=false"}, []string{"serve"}},
	}
	for _, tt := range tests {
		tt.env["IDLOG_HTTP_ADDR"] = "127.0.0.1:0"
		for _, cmd := range tt.cmds {
			code, stdout, stderr := runIdlog(t, tt.env, cmd)
			if code != 1 || !strings.Contains(stderr, addr) {
				t.Errorf("idlog %s with %v = %d, stderr %q; want 1 and an error naming %s", cmd, tt.env, code, stderr, addr)
			}
			if strings.Contains(stdout+stderr, "hunter2") {
				t.Errorf("idlog %s shows the password: %s", cmd, stdout+stderr)
			}
		}
	}
}

func TestMigrateSQLite(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	latest, err := migrations.Latest(migrations.SQLite)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("sqlite schema at version %d: %s\n", latest, filepath.Join(dir, "idlog.db"))
	for range 2 { // the second run finds nothing to do
		code, stdout, stderr := runIdlog(t, nil, "migrate", "-data-dir", dir)
		if code != 0 || stdout != want {
			t.Fatalf("idlog migrate = %d, stdout %q, stderr %q; want 0 and %q", code, stdout, stderr, want)
		}
	}
	// The store opens what migrate made.
	s, err := sqlite.Open(t.Context(), sqlite.Options{Path: filepath.Join(dir, "idlog.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := pingStore(t.Context(), s); err != nil {
		t.Error(err)
	}
}

func TestMigratePostgres(t *testing.T) {
	t.Parallel()
	base := os.Getenv("IDLOG_TEST_DATABASE_URL")
	if base == "" {
		t.Skip("IDLOG_TEST_DATABASE_URL is not set")
	}
	// A schema of its own, so the shared test database's other users see nothing.
	db, err := sql.Open("postgres", base)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() }) // after the schema is dropped
	schema := "idlog_migrate_" + strings.ReplaceAll(uuid.NewString(), "-", "")
	if _, err := db.ExecContext(t.Context(), "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := db.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Error(err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema) // lib/pq sends unknown parameters as session settings
	u.RawQuery = q.Encode()

	latest, err := migrations.Latest(migrations.Postgres)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		code, stdout, stderr := runIdlog(t, map[string]string{"IDLOG_DATABASE_URL": u.String()}, "migrate")
		if code != 0 || !strings.HasPrefix(stdout, fmt.Sprintf("postgres schema at version %d: ", latest)) {
			t.Fatalf("idlog migrate = %d, stdout %q, stderr %q", code, stdout, stderr)
		}
	}
	var n int
	if err := db.QueryRowContext(t.Context(), "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1 AND table_name = 'events'", schema).Scan(&n); err != nil || n != 1 {
		t.Errorf("events table in %s: %d (%v), want 1", schema, n, err)
	}
}

func TestMigrateEventStoreDB(t *testing.T) {
	t.Parallel()
	// Port 1: migrate must not even try to connect.
	code, stdout, _ := runIdlog(t, map[string]string{"IDLOG_EVENTSTORE_URL": "esdb://127.0.0.1:1?tls=false"}, "migrate")
	if code != 0 || !strings.HasPrefix(stdout, "nothing to migrate") {
		t.Errorf("idlog migrate on EventStoreDB = %d %q, want 0 and nothing to migrate", code, stdout)
	}
}

func TestPingStore(t *testing.T) {
	t.Parallel()
	s, err := sqlite.Open(t.Context(), sqlite.Options{Path: filepath.Join(t.TempDir(), "idlog.db")})
	if err != nil {
		t.Fatal(err)
	}
	if err := pingStore(t.Context(), s); err != nil {
		t.Errorf("ping open store: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := pingStore(t.Context(), s); !errors.Is(err, eventstore.ErrClosed) {
		t.Errorf("ping closed store = %v, want ErrClosed", err)
	}
}

// serveHTTP lets a request that is running when the stop comes finish, and refuses new ones.
func TestServeHTTPDrainsInFlightRequests(t *testing.T) {
	t.Parallel()
	started, release := make(chan struct{}), make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		fmt.Fprint(w, "done")
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(t.Context())
	served := make(chan error, 1)
	go func() { served <- serveHTTP(ctx, discardLogger(), ln, h, 10*time.Second) }()

	type result struct {
		body string
		err  error
	}
	got := make(chan result, 1)
	go func() {
		res, err := http.Get("http://" + ln.Addr().String() + "/")
		if err != nil {
			got <- result{err: err}
			return
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		got <- result{string(b), err}
	}()
	<-started
	stop()
	// Shutdown closes the listener first: wait until new connections are refused.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("still accepting connections 5s after the stop")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case err := <-served:
		t.Fatalf("serveHTTP returned %v before the in-flight request finished", err)
	default:
	}
	close(release)
	if r := <-got; r.err != nil || r.body != "done" {
		t.Errorf("in-flight request = %q, %v; want done", r.body, r.err)
	}
	if err := <-served; err != nil {
		t.Errorf("serveHTTP = %v, want nil", err)
	}
}

// A request still running when the shutdown timeout ends is cut, and serveHTTP says so.
func TestServeHTTPCutsRequestsAfterTimeout(t *testing.T) {
	t.Parallel()
	started := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-r.Context().Done() // only the cut ends it
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(t.Context())
	served := make(chan error, 1)
	go func() { served <- serveHTTP(ctx, discardLogger(), ln, h, 200*time.Millisecond) }()
	clientErr := make(chan error, 1)
	go func() {
		res, err := http.Get("http://" + ln.Addr().String() + "/")
		if err == nil {
			res.Body.Close()
		}
		clientErr <- err
	}()
	<-started
	begin := time.Now()
	stop()
	err = <-served
	if err == nil || !strings.Contains(err.Error(), "cut") || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("serveHTTP = %v, want the requests reported cut", err)
	}
	if took := time.Since(begin); took < 200*time.Millisecond || took > 5*time.Second {
		t.Errorf("shutdown took %s, want about the 200ms timeout", took)
	}
	if err := <-clientErr; err == nil {
		t.Error("the cut request got a response")
	}
}

// TestServeStopsOnSIGTERM runs the real binary's main with a SQLite store in a temporary
// directory, on a random port, and stops it the way an orchestrator does.
func TestServeStopsOnSIGTERM(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cmd := exec.CommandContext(t.Context(), os.Args[0], "serve", "-http-addr", "127.0.0.1:0")
	// IDLOG_NATS_PORT=0: the default port may be taken by a NATS server of the machine.
	cmd.Env = []string{runAsBinary + "=1", "IDLOG_DATA_DIR=" + dir, "IDLOG_LOG_FORMAT=json", "IDLOG_SHUTDOWN_TIMEOUT=5s", "IDLOG_NATS_PORT=0"}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var (
		logsMu sync.Mutex
		logs   []map[string]any
	)
	addr := make(chan string, 1)
	done := make(chan struct{})
	t.Cleanup(func() { // after a failure: no orphan process, no log after the test ended
		_ = cmd.Process.Kill()
		<-done
		_ = cmd.Wait()
	})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var entry map[string]any
			if err := json.Unmarshal(sc.Bytes(), &entry); err != nil {
				t.Errorf("log line is not JSON: %q", sc.Text())
				continue
			}
			logsMu.Lock()
			logs = append(logs, entry)
			logsMu.Unlock()
			if entry["msg"] == "listening" {
				addr <- entry["addr"].(string)
			}
		}
	}()
	var base string
	select {
	case a := <-addr:
		base = "http://" + a
	case <-done:
		t.Fatal("idlog serve exited before listening")
	case <-time.After(30 * time.Second):
		t.Fatal("idlog serve did not listen within 30s")
	}

	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		res, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Errorf("GET %s = %d %s, want 200", path, res.StatusCode, body)
		}
		if path == "/metrics" && !strings.Contains(string(body), `idlog_http_request_duration_seconds_count{method="GET",route="/readyz",status="200"} 1`) {
			t.Errorf("/metrics does not count the /readyz request:\n%s", body)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "idlog.db")); err != nil {
		t.Errorf("no SQLite database in the data directory: %v", err)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-done
	if err := cmd.Wait(); err != nil {
		t.Fatalf("idlog serve after SIGTERM: %v, want exit status 0", err)
	}
	logsMu.Lock()
	defer logsMu.Unlock()
	var msgs []string
	for _, e := range logs {
		msgs = append(msgs, e["msg"].(string))
	}
	if got := strings.Join(msgs, "|"); !strings.HasSuffix(got, "shutting down|stopped") {
		t.Errorf("log messages %q, want them to end with shutting down, stopped", got)
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Error("still answering after exit")
	}
}
