package eventbus_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	_ "github.com/lib/pq"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/idlog/idlog/eventbus"
	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/eventstore/eventstoretest"
	"github.com/idlog/idlog/eventstore/postgres"
	"github.com/idlog/idlog/eventstore/sqlite"
)

// store is what the relay needs of an event store.
type store interface {
	eventstore.Store
	eventstore.Checkpoints
}

// backend opens a fresh event store for one test.
type backend struct {
	name string
	open func(t testing.TB) store
}

// backends are SQLite always, and PostgreSQL when IDLOG_TEST_DATABASE_URL names a database.
func backends() []backend {
	out := []backend{{"sqlite", openSQLite}}
	if os.Getenv("IDLOG_TEST_DATABASE_URL") != "" {
		out = append(out, backend{"postgres", openPostgres})
	}
	return out
}

func openSQLite(t testing.TB) store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), sqlite.Options{Path: filepath.Join(t.TempDir(), "idlog.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// openPostgres opens a store in a schema of its own, dropped after the test.
func openPostgres(t testing.TB) store {
	t.Helper()
	s, err := postgres.Open(context.Background(), postgres.Options{DSN: eventstoretest.PostgresSchema(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// startServer runs a NATS server with JetStream in the test process. Port 0 picks a free one.
func startServer(t testing.TB, dir string, port int) *eventbus.Server {
	t.Helper()
	s, err := startEmbedded(eventbus.ServerOptions{StoreDir: dir, Port: port})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	return s
}

// serverCreds maps the URL of every embedded server the tests started to idlog's credentials
// file there, for connect and newClient.
var serverCreds sync.Map

// startEmbedded starts an embedded server, its credentials beside JetStream's files unless o
// says where.
func startEmbedded(o eventbus.ServerOptions) (*eventbus.Server, error) {
	if o.CredentialsDir == "" {
		o.CredentialsDir = filepath.Join(o.StoreDir, "keys")
	}
	s, err := eventbus.StartServer(o)
	if err == nil && s.ClientURL() != "" {
		serverCreds.Store(s.ClientURL(), s.CredentialsFile(eventbus.UserIdlog))
	}
	return s, err
}

// credentialsFor is idlog's credentials file for an embedded server's URL, "" for other URLs.
func credentialsFor(url string) string {
	f, _ := serverCreds.Load(url)
	s, _ := f.(string)
	return s
}

// testSigner signs the events of every test.
var testSigner = func() *eventbus.EventSigner {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	s, err := eventbus.NewEventSigner(key)
	if err != nil {
		panic(err)
	}
	return s
}()

// portOf is the port of a listening server's URL.
func portOf(t testing.TB, s *eventbus.Server) int {
	t.Helper()
	u, err := url.Parse(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	var p int
	fmt.Sscan(u.Port(), &p)
	return p
}

func newClient(t testing.TB, url string, log *slog.Logger) *eventbus.Client {
	t.Helper()
	c, err := eventbus.NewClient(eventbus.ClientOptions{
		URL: url, Credentials: credentialsFor(url), Signer: testSigner, Logger: log,
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 300 * time.Millisecond, DialTimeout: 2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// relayOptions are quick to react, for tests.
func relayOptions(s store, c *eventbus.Client) eventbus.RelayOptions {
	return eventbus.RelayOptions{
		Store: s, Checkpoints: s, Client: c,
		CheckpointInterval: 20 * time.Millisecond,
		LagInterval:        50 * time.Millisecond,
		MinBackoff:         20 * time.Millisecond,
		MaxBackoff:         300 * time.Millisecond,
		AckTimeout:         2 * time.Second,
	}
}

// runRelay runs a relay until the returned stop is called (or the test ends).
func runRelay(t testing.TB, o eventbus.RelayOptions) (*eventbus.Relay, func()) {
	t.Helper()
	r, err := eventbus.NewRelay(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Relay.Run = %v, want nil", err)
			}
		})
	}
	t.Cleanup(stop)
	return r, stop
}

// appendUsers appends one UserRegistered for each of n new users and returns the stored events.
func appendUsers(t testing.TB, s eventstore.Store, n int) []eventstore.Event {
	t.Helper()
	out := make([]eventstore.Event, 0, n)
	for range n {
		out = append(out, appendUser(t, s))
	}
	return out
}

func appendUser(t testing.TB, s eventstore.Store) eventstore.Event {
	t.Helper()
	uid := fmt.Sprintf("ID%010X", uuid.New().ID())
	data := fmt.Sprintf(`{"uid":%q,"email":"%s@example.com","password_hash":"$argon2id$v=19$secret","role":"member"}`, uid, strings.ToLower(uid))
	id := uuid.Must(uuid.NewV7())
	res, err := s.Append(context.Background(), eventstore.Append{
		Stream:   "user-" + uid,
		Expected: eventstore.NoStream,
		Events: []eventstore.NewEvent{{
			ID: id, Type: "UserRegistered", SchemaVersion: 1, Data: json.RawMessage(data),
			Metadata: eventstore.Metadata{ActorUID: uid, ActorRole: "member", CorrelationID: "corr-" + uid, IP: "192.0.2.1"},
		}},
	})
	if err != nil {
		t.Fatalf("append: %v", err)
	}
	return eventstore.Event{
		ID: id, StreamID: "user-" + uid, StreamVersion: 1, GlobalPosition: res.LastPosition,
		Type: "UserRegistered", SchemaVersion: 1, Data: json.RawMessage(data), RecordedAt: res.RecordedAt,
	}
}

// storedEvents reads the whole log.
func storedEvents(t testing.TB, s eventstore.Store) []eventstore.Event {
	t.Helper()
	var out []eventstore.Event
	for e, err := range s.ReadAll(context.Background(), 0, eventstore.Filter{}) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

// streamMessage is one message of IDLOG_EVENTS.
type streamMessage struct {
	Seq     uint64
	Subject string
	Header  nats.Header
	Event   eventbus.CloudEvent
	Raw     []byte
}

// streamMessages reads every message IDLOG_EVENTS holds, in stream order.
func streamMessages(t testing.TB, nc *nats.Conn) []streamMessage {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, eventbus.EventsStream)
	if err != nil {
		t.Fatalf("stream %s: %v", eventbus.EventsStream, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []streamMessage
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("message %d: %v", seq, err)
		}
		var ce eventbus.CloudEvent
		if err := json.Unmarshal(m.Data, &ce); err != nil {
			t.Fatalf("message %d is not a CloudEvent: %v: %s", seq, err, m.Data)
		}
		out = append(out, streamMessage{Seq: seq, Subject: m.Subject, Header: m.Header, Event: ce, Raw: m.Data})
	}
	return out
}

// streamCount is how many messages IDLOG_EVENTS holds, 0 if it does not exist.
func streamCount(t testing.TB, nc *nats.Conn) uint64 {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, eventbus.EventsStream)
	if err != nil {
		return 0
	}
	info, err := st.Info(ctx)
	if err != nil {
		return 0
	}
	return info.State.Msgs
}

// checkExactlyOnceInOrder fails unless the stream holds exactly the stored events, in order.
func checkExactlyOnceInOrder(t testing.TB, nc *nats.Conn, s eventstore.Store) {
	t.Helper()
	want := storedEvents(t, s)
	got := streamMessages(t, nc)
	if len(got) != len(want) {
		t.Errorf("the stream holds %d messages, the log %d events", len(got), len(want))
	}
	for i := range min(len(got), len(want)) {
		if got[i].Event.ID != want[i].ID.String() || got[i].Event.Position != fmt.Sprint(want[i].GlobalPosition) {
			t.Fatalf("stream message %d is event %s at position %s, want %s at %d", i, got[i].Event.ID, got[i].Event.Position, want[i].ID, want[i].GlobalPosition)
		}
	}
}

// connect connects to url, as idlog if an embedded server listens there.
func connect(t testing.TB, url string) *nats.Conn {
	t.Helper()
	var opts []nats.Option
	if f := credentialsFor(url); f != "" {
		opt, err := nats.NkeyOptionFromSeed(f)
		if err != nil {
			t.Fatal(err)
		}
		opts = append(opts, opt)
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// logBuffer collects a logger's output for a test to read.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuffer) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

// forgetfulCheckpoints drops every save: the relay behaves as if it were killed after each
// publish, before its checkpoint reached the database.
type forgetfulCheckpoints struct{ eventstore.Checkpoints }

func (forgetfulCheckpoints) SetCheckpoint(context.Context, string, uint64) error { return nil }

// startAuthServer runs a NATS server with JetStream that wants a user name and password.
func startAuthServer(t testing.TB, port int, user, password string) *server.Server {
	t.Helper()
	ns, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: port, Username: user, Password: password,
		JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS server with a password not ready")
	}
	t.Cleanup(ns.Shutdown)
	return ns
}
