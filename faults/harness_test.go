//go:build faults

package faults_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	_ "modernc.org/sqlite"

	"github.com/idlog/idlog/auth"
	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/eventbus"
	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/eventstore/postgres"
	"github.com/idlog/idlog/eventstore/sqlite"
	"github.com/idlog/idlog/migrations"
	"github.com/idlog/idlog/personaldata"
)

// binary is the idlog binary TestMain builds once for every test.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "idlog-faults-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "idlog")
	// IDLOG_FAULTS_BINARY runs the tests against another build (an earlier commit, to compare
	// figures such as TestIdleCost's in one sitting).
	if b := os.Getenv("IDLOG_FAULTS_BINARY"); b != "" {
		binary = b
	} else {
		cmd := exec.Command("go", "build", "-o", binary, "github.com/idlog/idlog/cmd/idlog")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "faults: build idlog:", err)
			os.Exit(1)
		}
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// node is one idlog child process and the settings it runs with, kept across restarts.
type node struct {
	t    *testing.T
	env  []string
	addr string
	cmd  *exec.Cmd
	logs *bytes.Buffer
	done chan struct{}
}

// newNode prepares an idlog on a random port with its data under a temp dir; extra are more
// IDLOG_* settings. Argon2 is made cheap so the load is not all hashing.
func newNode(t *testing.T, extra ...string) *node {
	t.Helper()
	n := &node{t: t, addr: fmt.Sprintf("127.0.0.1:%d", freePort(t))}
	n.env = append(os.Environ(),
		"IDLOG_HTTP_ADDR="+n.addr,
		"IDLOG_DATA_DIR="+t.TempDir(),
		"IDLOG_ARGON2_MEMORY=1024", "IDLOG_ARGON2_ITERATIONS=1", "IDLOG_ARGON2_PARALLELISM=1",
		"IDLOG_LOG_LEVEL=warn", "IDLOG_SHUTDOWN_TIMEOUT=5s",
	)
	n.env = append(n.env, extra...)
	t.Cleanup(func() {
		if n.cmd != nil && n.running() {
			_ = n.cmd.Process.Kill()
			<-n.done
		}
		if t.Failed() && n.logs != nil {
			t.Logf("idlog output:\n%s", n.logs.String())
		}
	})
	return n
}

func (n *node) url(path string) string { return "http://" + n.addr + path }

func (n *node) running() bool {
	select {
	case <-n.done:
		return false
	default:
		return true
	}
}

// idlog runs a one-shot idlog command with the node's settings.
func (n *node) idlog(args ...string) string {
	n.t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = n.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		n.t.Fatalf("idlog %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// start runs `idlog serve` and waits until it answers /healthz.
func (n *node) start() {
	n.t.Helper()
	if n.logs == nil {
		n.logs = &bytes.Buffer{}
	}
	fmt.Fprintf(n.logs, "--- start %s\n", time.Now().Format(time.RFC3339Nano))
	n.cmd = exec.Command(binary, "serve")
	n.cmd.Env = n.env
	w := &lockedWriter{w: n.logs}
	n.cmd.Stdout, n.cmd.Stderr = w, w
	if err := n.cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	n.done = make(chan struct{})
	go func() { _ = n.cmd.Wait(); close(n.done) }()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if !n.running() {
			n.t.Fatalf("idlog serve exited at start:\n%s", n.logs.String())
		}
		if resp, err := http.Get(n.url("/healthz")); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	n.t.Fatalf("idlog serve did not answer /healthz in 30s:\n%s", n.logs.String())
}

// kill sends SIGKILL: no shutdown, no flush, nothing finished.
func (n *node) kill() {
	_ = n.cmd.Process.Signal(syscall.SIGKILL)
	<-n.done
}

// stop sends SIGTERM and waits for a clean exit.
func (n *node) stop() {
	n.t.Helper()
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
	case <-time.After(30 * time.Second):
		n.t.Fatal("idlog serve did not stop in 30s after SIGTERM")
	}
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

var hc = &http.Client{Timeout: 20 * time.Second}

// call sends a JSON request and decodes a 2xx answer into out; it returns the status (0: no
// answer).
func call(method, url, token string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("%s %s: %d %s", method, url, resp.StatusCode, bytes.TrimSpace(b))
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, err
		}
	}
	return resp.StatusCode, nil
}

const password = "faults correct horse battery staple 42"

type user struct {
	uid, email, token string
}

// signUp registers a user and signs them in.
func signUp(t *testing.T, n *node, email string) user {
	t.Helper()
	if _, err := call(http.MethodPost, n.url("/api/v2/identity/users"), "", map[string]string{"email": email, "password": password}, nil); err != nil {
		t.Fatal(err)
	}
	return signIn(t, n, email)
}

func signIn(t *testing.T, n *node, email string) user {
	t.Helper()
	var s struct {
		AccessToken string `json:"access_token"`
		User        struct {
			UID string `json:"uid"`
		} `json:"user"`
	}
	if _, err := call(http.MethodPost, n.url("/api/v2/identity/sessions"), "", map[string]string{"login": email, "password": password}, &s); err != nil {
		t.Fatal(err)
	}
	return user{uid: s.User.UID, email: email, token: s.AccessToken}
}

// acked is what the load got a 2xx for, by kind: sign-up emails, label values, spend references.
type acked struct {
	mu       sync.Mutex
	signups  []string
	labels   []string
	spends   []string
	statuses map[int]int
	// inWindow counts answers while the fault was on, by status.
	inWindow map[int]int
	wait     func()
}

func (a *acked) note(status int, fault bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.statuses == nil {
		a.statuses, a.inWindow = map[int]int{}, map[int]int{}
	}
	a.statuses[status]++
	if fault {
		a.inWindow[status]++
	}
}

// load runs workers, each acting as one of users, until stop closes: sign-ups, label changes
// and spends with values unique to the request, so the log can be searched for each. fault
// reports whether the fault is on when an answer comes.
func load(n *node, users []user, workers int, run string, stop <-chan struct{}, fault func() bool) *acked {
	a := &acked{statuses: map[int]int{}, inWindow: map[int]int{}}
	var wg sync.WaitGroup
	var seq atomic.Int64
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u := users[w%len(users)]
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := fmt.Sprintf("%s-%d-%d", run, w, seq.Add(1))
				var st int
				switch i % 3 {
				case 0:
					email := "f-" + k + "@example.com"
					st, _ = call(http.MethodPost, n.url("/api/v2/identity/users"), "", map[string]string{"email": email, "password": password}, nil)
					if st/100 == 2 {
						a.mu.Lock()
						a.signups = append(a.signups, email)
						a.mu.Unlock()
					}
				case 1:
					st, _ = call(http.MethodPatch, n.url("/api/v2/resource/labels/faults"), u.token, map[string]string{"value": "v-" + k}, nil)
					if st/100 == 2 {
						a.mu.Lock()
						a.labels = append(a.labels, "v-"+k)
						a.mu.Unlock()
					}
				case 2:
					st, _ = call(http.MethodPost, n.url("/api/v2/resource/wallet/spend"), u.token, map[string]string{"amount": "1", "reference": "r-" + k}, nil)
					if st/100 == 2 {
						a.mu.Lock()
						a.spends = append(a.spends, "r-"+k)
						a.mu.Unlock()
					}
				}
				a.note(st, fault())
				if st == 0 {
					time.Sleep(20 * time.Millisecond) // the server is away: do not spin
				}
			}
		}()
	}
	a.wait = func() { wg.Wait() }
	return a
}

// storedEvent is the part of a stored event the checks read.
type storedEvent struct {
	ID     string
	Stream string
	Type   string
	Data   map[string]any
}

// readLog reads the whole event log as idlog's readers see it: through the store that opens the
// users' personal data (sealed in the table) with their data keys, wrapped with the node's
// secret key (nodeEnv's IDLOG_SECRET_KEY_FILE, or the one in its data directory). driver is
// "sqlite" (dsn a file path) or "postgres".
func readLog(t *testing.T, driver, dsn string, nodeEnv []string) []storedEvent {
	t.Helper()
	ctx := context.Background()
	secretFile := envValue(nodeEnv, "IDLOG_SECRET_KEY_FILE")
	if secretFile == "" {
		secretFile = filepath.Join(envValue(nodeEnv, "IDLOG_DATA_DIR"), "keys", "secret.key")
	}
	secret, err := auth.LoadOrCreateKey(secretFile)
	if err != nil {
		t.Fatal(err)
	}
	var raw eventstore.Store
	var db *sqlx.DB
	var dialect migrations.Dialect
	if driver == "sqlite" {
		s, err := sqlite.Open(ctx, sqlite.Options{Path: dsn})
		if err != nil {
			t.Fatal(err)
		}
		raw, db, dialect = s, s.DB(), migrations.SQLite
	} else {
		s, err := postgres.Open(ctx, postgres.Options{DSN: dsn})
		if err != nil {
			t.Fatal(err)
		}
		raw, db, dialect = s, s.DB(), migrations.Postgres
	}
	defer raw.Close()
	keys, err := personaldata.NewKeys(db, dialect, secret)
	if err != nil {
		t.Fatal(err)
	}
	store, err := personaldata.Wrap(personaldata.Options{Store: raw, Keys: keys, Registry: domain.NewEventRegistry(), Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	var out []storedEvent
	for e, err := range store.ReadAll(ctx, 0, eventstore.Filter{}) {
		if err != nil {
			t.Fatal(err)
		}
		se := storedEvent{ID: e.ID.String(), Stream: e.StreamID, Type: e.Type}
		if err := json.Unmarshal(e.Data, &se.Data); err != nil {
			t.Fatalf("event %s: data: %v", e.ID, err)
		}
		out = append(out, se)
	}
	return out
}

// checkAcked: every acknowledged request is in the log exactly once, and no request's unique
// value is there twice (acknowledged or not), and no event id twice.
func checkAcked(t *testing.T, log []storedEvent, a *acked) {
	t.Helper()
	count := map[string]int{}
	ids := map[string]bool{}
	for _, e := range log {
		if ids[e.ID] {
			t.Errorf("event id %s stored twice", e.ID)
		}
		ids[e.ID] = true
		switch e.Type {
		case "UserRegistered":
			count["signup:"+str(e.Data["email"])]++
		case "LabelUpdated":
			count["label:"+str(e.Data["value"])]++
		case "WalletDebited":
			count["spend:"+str(e.Data["reference"])]++
		}
	}
	for k, c := range count {
		if c > 1 && (strings.HasPrefix(k, "label:v-") || strings.HasPrefix(k, "spend:r-") || strings.HasPrefix(k, "signup:f-")) {
			t.Errorf("%s is in the log %d times", k, c)
		}
	}
	missing := 0
	check := func(kind string, vals []string) {
		for _, v := range vals {
			if count[kind+":"+v] != 1 {
				missing++
				if missing <= 10 {
					t.Errorf("acknowledged %s %q is in the log %d times, want 1", kind, v, count[kind+":"+v])
				}
			}
		}
	}
	check("signup", a.signups)
	check("label", a.labels)
	check("spend", a.spends)
	t.Logf("log: %d events; acknowledged: %d sign-ups, %d label changes, %d spends; answers by status %v",
		len(log), len(a.signups), len(a.labels), len(a.spends), a.statuses)
}

func str(v any) string { s, _ := v.(string); return s }

// checkStream: the JSON stream holds each event of the log exactly once (by Nats-Msg-Id), and
// nothing else.
// Every message must carry idlog's signature, checked with the key serve wrote into dataDir.
// opts authenticate the connection (the embedded server admits no anonymous client).
func checkStream(t *testing.T, natsURL, dataDir string, log []storedEvent, opts ...nats.Option) {
	t.Helper()
	jwks, err := os.ReadFile(filepath.Join(dataDir, "keys", "events-jwks.json"))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := eventbus.ParseEventKeys(jwks)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(natsURL, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := js.Stream(ctx, "IDLOG_EVENTS")
	if err != nil {
		t.Fatal(err)
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for got := uint64(0); got < info.State.Msgs; {
		batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			seen[m.Headers().Get("Nats-Msg-Id")]++
			n++
			if _, err := eventbus.VerifyEvent(keys, m.Subject(), m.Data()); err != nil {
				t.Errorf("stream message on %s: %v", m.Subject(), err)
			}
		}
		if err := batch.Error(); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			t.Fatalf("stream: fetched %d of %d messages, then nothing", got, info.State.Msgs)
		}
		got += uint64(n)
	}
	inLog := map[string]bool{}
	for _, e := range log {
		inLog[e.ID] = true
		if seen[e.ID] != 1 {
			t.Errorf("event %s (%s) is in the NATS stream %d times, want 1", e.ID, e.Type, seen[e.ID])
		}
	}
	for id, c := range seen {
		if !inLog[id] {
			t.Errorf("the NATS stream holds %q (%d times), which is not in the log", id, c)
		}
	}
	t.Logf("NATS stream: %d messages for %d events", info.State.Msgs, len(log))
}

// waitRelay waits until /readyz reports the relay connected with nothing left to publish.
func waitRelay(t *testing.T, n *node, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	var last string
	for time.Now().Before(deadline) {
		var r struct {
			Details struct {
				NATS struct {
					Connected bool  `json:"connected"`
					LagEvents int64 `json:"lag_events"`
				} `json:"nats"`
			} `json:"details"`
		}
		resp, err := http.Get(n.url("/readyz"))
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			last = string(b)
			if json.Unmarshal(b, &r) == nil && r.Details.NATS.Connected && r.Details.NATS.LagEvents == 0 && resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("the relay did not catch up in %s; last /readyz: %s", within, last)
}

// waitProjections waits until every projector of n's store holds the whole log (lag 0), as
// `idlog projections status -json` reports it: after a restart each projector catches up on its
// own, after the relay or before it, so a read model read too early is merely behind.
func waitProjections(t *testing.T, n *node, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	var last string
	for time.Now().Before(deadline) {
		cmd := exec.Command(binary, "projections", "status", "-json")
		cmd.Env = n.env
		out, err := cmd.Output()
		last = string(out)
		var st []struct {
			Name      string `json:"name"`
			LagEvents int64  `json:"lag_events"`
		}
		if err == nil && json.Unmarshal(out, &st) == nil && len(st) > 0 {
			behind := false
			for _, s := range st {
				behind = behind || s.LagEvents != 0
			}
			if !behind {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("the projections did not catch up in %s; last status: %s", within, last)
}
