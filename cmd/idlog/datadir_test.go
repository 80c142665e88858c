package main

import (
	"bufio"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// serve, started with umask 022, leaves nothing in its data directory that group or others can
// read: the SQLite database and its -wal and -shm, the keys, JetStream's store. A directory an
// older idlog left readable is tightened, and the start says so.
func TestDataDirectoryIsPrivate(t *testing.T) {
	t.Parallel()
	for _, existing := range []bool{false, true} {
		name := "fresh"
		if existing {
			name = "left readable"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "data")
			if existing {
				if err := os.MkdirAll(filepath.Join(dir, "old"), 0o755); err != nil {
					t.Fatal(err)
				}
				for _, p := range []string{dir, filepath.Join(dir, "old")} {
					if err := os.Chmod(p, 0o755); err != nil {
						t.Fatal(err)
					}
				}
				if err := os.WriteFile(filepath.Join(dir, "old", "notes"), []byte("x"), 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(filepath.Join(dir, "old", "notes"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			logs := serveUntilListening(t, dir)
			if existing && !strings.Contains(logs, "data directory was readable by others") {
				t.Errorf("no log line says the data directory was tightened:\n%s", logs)
			}
			seen := map[string]bool{}
			err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				info, err := d.Info()
				if err != nil {
					return err
				}
				rel, _ := filepath.Rel(dir, path)
				seen[rel] = true
				if perm := info.Mode().Perm(); perm&0o077 != 0 {
					t.Errorf("%s has mode %v: group or others may use it", rel, perm)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{".", "idlog.db", "keys/signing.pem", "keys/secret.key", "nats"} {
				if !seen[want] {
					t.Errorf("the data directory lacks %s (has %v): the check saw too little", want, seen)
				}
			}
		})
	}
}

// serveUntilListening runs `idlog serve` on dir under umask 022 until it listens and has written
// its database, then stops it with SIGTERM; it returns the logs.
func serveUntilListening(t *testing.T, dir string) string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), "/bin/sh", "-c", `umask 022 && exec "$0" serve`, os.Args[0])
	cmd.Env = []string{runAsBinary + "=1", "IDLOG_DATA_DIR=" + dir, "IDLOG_HTTP_ADDR=127.0.0.1:0", "IDLOG_NATS_PORT=0",
		"IDLOG_LOG_FORMAT=json", "IDLOG_SHUTDOWN_TIMEOUT=5s"}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	listening := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logs.WriteString(sc.Text() + "\n")
			var entry map[string]any
			if json.Unmarshal(sc.Bytes(), &entry) == nil && entry["msg"] == "listening" {
				close(listening)
			}
		}
	}()
	select {
	case <-listening:
	case <-done:
		_ = cmd.Wait()
		t.Fatalf("idlog serve exited before listening:\n%s", logs.String())
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		_ = cmd.Wait()
		t.Fatalf("idlog serve did not listen within 60s:\n%s", logs.String())
	}
	// Checked while it runs, when the -wal and -shm files exist, and again after it stopped.
	walkPrivate(t, dir)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-done
	if err := cmd.Wait(); err != nil {
		t.Fatalf("idlog serve: %v\n%s", err, logs.String())
	}
	return logs.String()
}

// walkPrivate fails the test for any entry under dir that group or others may use.
func walkPrivate(t *testing.T, dir string) {
	t.Helper()
	sawWAL := false
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // removed meanwhile
		}
		if strings.HasSuffix(path, "-wal") {
			sawWAL = true
		}
		if info, err := d.Info(); err == nil && info.Mode().Perm()&0o077 != 0 {
			t.Errorf("while serving, %s has mode %v: group or others may use it", path, info.Mode().Perm())
		}
		return nil
	})
	if !sawWAL {
		t.Error("no SQLite -wal file while serving: the check of its mode saw nothing")
	}
}
