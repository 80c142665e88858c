package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/idlog/idlog/internal/smtptest"
)

// serveProcess starts idlog serve as a child process (this test binary acting as idlog) and
// returns its base URL and the process.
func serveProcess(t *testing.T, env ...string) (string, *exec.Cmd) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "serve", "-http-addr", "127.0.0.1:0")
	cmd.Env = append([]string{runAsBinary + "=1", "IDLOG_LOG_FORMAT=json", "IDLOG_NATS_PORT=none",
		"IDLOG_ARGON2_MEMORY=64", "IDLOG_ARGON2_ITERATIONS=1"}, env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var e map[string]any
			if json.Unmarshal(sc.Bytes(), &e) == nil && e["msg"] == "listening" {
				addr <- e["addr"].(string)
			}
		}
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	select {
	case a := <-addr:
		return "http://" + a, cmd
	case <-time.After(30 * time.Second):
		t.Fatal("idlog serve did not listen within 30s")
	}
	return "", nil
}

// waitFor waits, up to a minute, for cond to hold, checking it whenever the SMTP server changes.
func waitFor(t *testing.T, srv *smtptest.Server, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(time.Minute)
	for {
		changed := srv.Changed()
		if cond() {
			return
		}
		select {
		case <-changed:
		case <-time.After(100 * time.Millisecond): // the courier's own progress is not signalled
		case <-deadline:
			t.Fatalf("not within a minute: %s", what)
		}
	}
}

// TestCourierKilledMidDeliveryLosesNothing: idlog serve is killed (SIGKILL) while its courier is in
// the middle of an SMTP delivery; after a restart on the same data directory every message queued
// before the kill reaches the SMTP server, with the same Message-ID if it is sent twice.
func TestCourierKilledMidDeliveryLosesNothing(t *testing.T) {
	t.Parallel()
	srv := smtptest.Start(t)
	srv.Hold()
	dir := t.TempDir()
	env := []string{"IDLOG_DATA_DIR=" + dir, "IDLOG_SMTP_URL=" + srv.URL()}
	base, first := serveProcess(t, env...)
	const n = 5
	for i := range n {
		if s := postJSON(t, base+"/api/v2/identity/users", map[string]string{"email": fmt.Sprintf("kill%d@example.com", i), "password": "Correct-Horse-9-battery"}); s != 201 {
			t.Fatalf("sign up %d: %d", i, s)
		}
	}
	waitFor(t, srv, "a delivery in progress", func() bool { return srv.Receives() > 0 })
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	srv.Release()

	serveProcess(t, env...)
	waitFor(t, srv, "every message delivered after the restart", func() bool {
		to := map[string]bool{}
		for _, m := range srv.Messages() {
			to[m.To[0]] = true
		}
		return len(to) == n
	})
	ids := map[string]string{}
	for _, m := range srv.Messages() {
		id := m.Mail.Header.Get("Message-Id")
		if prev, ok := ids[id]; ok && prev != m.To[0] {
			t.Fatalf("Message-ID %s reused for %s and %s", id, prev, m.To[0])
		}
		ids[id] = m.To[0]
	}
	if len(ids) != n {
		t.Fatalf("%d distinct Message-IDs for %d messages", len(ids), n)
	}
}
