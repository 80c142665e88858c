package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/idlog/idlog/eventbus"
	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/eventstore/sqlite"
)

// A taken NATS port stops serve with an error that names the setting to change.
func TestServeStopsWhenTheNATSPortIsTaken(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	code, _, stderr := runIdlog(t, map[string]string{
		"IDLOG_DATA_DIR": t.TempDir(), "IDLOG_HTTP_ADDR": "127.0.0.1:0", "IDLOG_NATS_PORT": fmt.Sprint(port),
	}, "serve")
	if want := fmt.Sprintf("IDLOG_NATS_PORT %d is in use", port); code != 1 || !strings.Contains(stderr, want) {
		t.Errorf("idlog serve = %d, stderr %q; want 1 and %q", code, stderr, want)
	}
}

// With no IDLOG_NATS_PORT, a taken default port does not stop serve: the embedded server takes a
// free port and the log says which setting chooses one.
func TestServeFallsBackWhenTheDefaultNATSPortIsTaken(t *testing.T) {
	t.Parallel()
	if ln, err := net.Listen("tcp", "127.0.0.1:4222"); err == nil {
		defer ln.Close() // free here: hold it, as a NATS server of the machine's would
	}
	logs, stderr := newJSONLogs(t)
	ctx, stop := context.WithCancel(t.Context())
	env := map[string]string{"IDLOG_DATA_DIR": t.TempDir(), "IDLOG_HTTP_ADDR": "127.0.0.1:0", "IDLOG_LOG_FORMAT": "json"}
	served := make(chan int, 1)
	go func() {
		served <- run(ctx, []string{"serve"}, &environment{stdout: io.Discard, stderr: stderr, getenv: func(k string) string { return env[k] }})
	}()
	warning := logs.wait(t, "the default NATS port is in use; the embedded NATS server takes a free port instead: set IDLOG_NATS_PORT to choose one, or IDLOG_NATS_URL to use the server on that port")
	if warning["port"] != float64(4222) {
		t.Errorf("warning names port %v, want 4222", warning["port"])
	}
	if url := logs.wait(t, "embedded NATS server listening")["url"].(string); strings.HasSuffix(url, ":4222") {
		t.Errorf("embedded NATS server at %s, want another port", url)
	}
	logs.wait(t, "listening")
	stop()
	if code := <-served; code != 0 {
		t.Errorf("serve exited %d after a clean stop", code)
	}
}

// jsonLogs reads serve's JSON log lines as they come.
type jsonLogs struct {
	lines chan map[string]any
}

func newJSONLogs(t *testing.T) (*jsonLogs, io.Writer) {
	r, w := io.Pipe()
	l := &jsonLogs{lines: make(chan map[string]any, 1000)}
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			var entry map[string]any
			if json.Unmarshal(sc.Bytes(), &entry) == nil {
				l.lines <- entry
			}
		}
	}()
	t.Cleanup(func() { w.Close() })
	return l, w
}

// wait returns the first log entry with this message.
func (l *jsonLogs) wait(t *testing.T, msg string) map[string]any {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case e := <-l.lines:
			if e["msg"] == msg {
				return e
			}
		case <-timeout:
			t.Fatalf("no log %q within 30s", msg)
		}
	}
}

// serve runs with its embedded NATS server; events appended to its store come out of
// idlog events tail, and a durable tail resumes where it stopped.
func TestServeRelaysToEventsTail(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	logs, stderr := newJSONLogs(t)
	ctx, stop := context.WithCancel(t.Context())
	env := map[string]string{"IDLOG_DATA_DIR": dir, "IDLOG_HTTP_ADDR": "127.0.0.1:0", "IDLOG_NATS_PORT": "0", "IDLOG_LOG_FORMAT": "json"}
	served := make(chan int, 1)
	go func() {
		served <- run(ctx, []string{"serve"}, &environment{stdout: io.Discard, stderr: stderr, getenv: func(k string) string { return env[k] }})
	}()
	natsURL := logs.wait(t, "embedded NATS server listening")["url"].(string)
	base := "http://" + logs.wait(t, "listening")["addr"].(string)

	// Another process appending to the same SQLite file: serve's relay notices by polling.
	s, err := sqlite.Open(t.Context(), sqlite.Options{Path: filepath.Join(dir, "idlog.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var ids []string
	for i := range 3 {
		id := uuid.Must(uuid.NewV7())
		ids = append(ids, id.String())
		if _, err := s.Append(t.Context(), eventstore.Append{
			Stream: fmt.Sprintf("user-ID%010d", i), Expected: eventstore.NoStream,
			Events: []eventstore.NewEvent{{ID: id, Type: "UserRegistered", SchemaVersion: 1, Data: json.RawMessage(`{"email":"a@example.com"}`)}},
		}); err != nil {
			t.Fatal(err)
		}
	}

	// The keys of serve's JWKS route verify what tail prints.
	res, err := http.Get(base + "/.well-known/events-jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	jwks, _ := io.ReadAll(res.Body)
	res.Body.Close()
	keys, err := eventbus.ParseEventKeys(jwks)
	if res.StatusCode != http.StatusOK || err != nil {
		t.Fatalf("GET /.well-known/events-jwks.json = %d %s: %v", res.StatusCode, jwks, err)
	}
	// With the data directory and the port, tail finds the reader's credentials by itself.
	tailEnv := map[string]string{"IDLOG_DATA_DIR": dir, "IDLOG_NATS_PORT": natsURL[strings.LastIndex(natsURL, ":")+1:]}
	tail := func(args ...string) []string {
		t.Helper()
		code, stdout, stderr := runIdlog(t, tailEnv, append([]string{"events", "tail"}, args...)...)
		if code != 0 {
			t.Fatalf("idlog events tail %q = %d, stderr %q", args, code, stderr)
		}
		var got []string
		for _, line := range strings.Split(strings.TrimSuffix(stdout, "\n"), "\n") {
			ce, err := eventbus.VerifyEvent(keys, "", []byte(line))
			if err != nil {
				t.Fatalf("tail printed %q, not a signed CloudEvent: %v", line, err)
			}
			got = append(got, ce.ID)
		}
		return got
	}
	// Anonymous, as any local process: refused.
	if code, _, stderr := runIdlog(t, map[string]string{"IDLOG_NATS_URL": natsURL}, "events", "tail", "-keys", filepath.Join(dir, "keys", "events-jwks.json"), "-max", "1"); code != 1 || !strings.Contains(stderr, "Authorization Violation") {
		t.Errorf("anonymous events tail = %d, stderr %q; want 1 and an authorization violation", code, stderr)
	}
	for _, f := range []string{"nats-idlog.nk", "nats-reader.nk", "nats-mailer.nk", "events.pem"} {
		if info, err := os.Stat(filepath.Join(dir, "keys", f)); err != nil || info.Mode().Perm() != 0o600 {
			t.Errorf("keys/%s: %v, want mode 0600", f, err)
		}
	}
	// With the data directory alone, tail finds the port serve took (IDLOG_NATS_PORT=0 here) in
	// the file serve records it in, not the default 4222.
	if code, stdout, stderr := runIdlog(t, map[string]string{"IDLOG_DATA_DIR": dir}, "events", "tail", "-from-start", "-max", "1"); code != 0 || !strings.Contains(stdout, ids[0]) {
		t.Errorf("events tail with only the data directory = %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if got := tail("-from-start", "-max", "3"); strings.Join(got, ",") != strings.Join(ids, ",") {
		t.Errorf("tail -from-start = %v, want %v", got, ids)
	}
	if got := tail("-user", "ID0000000001", "-from-start", "-max", "1"); len(got) != 1 || got[0] != ids[1] {
		t.Errorf("tail -user = %v, want %s", got, ids[1])
	}
	if got := tail("-durable", "test", "-from-start", "-max", "1"); len(got) != 1 || got[0] != ids[0] {
		t.Errorf("durable tail = %v, want %s", got, ids[0])
	}
	if got := tail("-durable", "test", "-max", "2"); strings.Join(got, ",") != strings.Join(ids[1:], ",") {
		t.Errorf("resumed durable tail = %v, want %v", got, ids[1:])
	}

	// A message on idlog.events.> that idlog did not sign (published here with idlog's own NATS
	// credentials, as a thief of nats-idlog.nk could) is skipped by tail and reported.
	seed, err := nats.NkeyOptionFromSeed(filepath.Join(dir, "keys", "nats-idlog.nk"))
	if err != nil {
		t.Fatal(err)
	}
	thief, err := nats.Connect(natsURL, seed)
	if err != nil {
		t.Fatal(err)
	}
	defer thief.Close()
	js, _ := jetstream.New(thief)
	if _, err := js.Publish(t.Context(), "idlog.events.UserRegistered.ID0000000009", []byte(`{"specversion":"1.0","type":"UserRegistered","subject":"ID0000000009","idlogposition":"999999","data":{"role":"admin"}}`)); err != nil {
		t.Fatal(err)
	}
	id := uuid.Must(uuid.NewV7())
	if _, err := s.Append(t.Context(), eventstore.Append{
		Stream: "user-ID0000000003", Expected: eventstore.NoStream,
		Events: []eventstore.NewEvent{{ID: id, Type: "UserRegistered", SchemaVersion: 1, Data: json.RawMessage(`{"email":"d@example.com"}`)}},
	}); err != nil {
		t.Fatal(err)
	}
	code, stdout, tailErr := runIdlog(t, tailEnv, "events", "tail", "-from-start", "-max", "4")
	if code != 0 || strings.Count(stdout, "\n") != 4 || strings.Contains(stdout, "999999") || !strings.Contains(stdout, id.String()) ||
		!strings.Contains(tailErr, "skipped message 4 on idlog.events.UserRegistered.ID0000000009: eventbus: event signature: the message is not signed") {
		t.Errorf("tail past a forged event = %d, stdout %q, stderr %q; want the 4 genuine events and the forgery reported", code, stdout, tailErr)
	}

	for path, want := range map[string]string{"/readyz": `"status":"ok"`, "/metrics": "idlog_eventbus_nats_connected 1"} {
		res, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			t.Errorf("GET %s = %d %s, want 200 and %s", path, res.StatusCode, body, want)
		}
	}
	stop()
	if code := <-served; code != 0 {
		t.Errorf("idlog serve = %d after the stop, want 0", code)
	}
	if _, err := os.Stat(filepath.Join(dir, "nats.url")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("nats.url after serve stopped: %v, want it removed", err)
	}
}

func TestEventsTailUsage(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		args []string
		env  map[string]string
		code int
		want string
	}{
		{[]string{"events"}, nil, 2, "Usage: idlog events tail"},
		{[]string{"events", "tail"}, map[string]string{"IDLOG_NATS_URL": "nats://127.0.0.1:1"}, 1, "nats://127.0.0.1:1"},
		{[]string{"events", "tail"}, map[string]string{"IDLOG_NATS_PORT": "none"}, 1, "IDLOG_NATS_PORT is none"},
		{[]string{"events", "tail"}, map[string]string{"IDLOG_NATS_URL": "nats://u:hunter2@127.0.0.1:1"}, 1, "nats://u:xxxxx@127.0.0.1:1"},
	} {
		code, _, stderr := runIdlog(t, tt.env, tt.args...)
		if code != tt.code || !strings.Contains(stderr, tt.want) || strings.Contains(stderr, "hunter2") {
			t.Errorf("idlog %q = %d, stderr %q; want %d and %q", tt.args, code, stderr, tt.code, tt.want)
		}
	}
}
