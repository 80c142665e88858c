package eventbus_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/idlog/idlog/audit"
	"github.com/idlog/idlog/eventbus"
	"github.com/idlog/idlog/eventstore"
)

// errorLog collects the asynchronous errors of a connection: the server reports a permission
// violation that way.
type errorLog struct {
	mu   sync.Mutex
	errs []string
}

func (l *errorLog) handler(_ *nats.Conn, _ *nats.Subscription, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errs = append(l.errs, err.Error())
}

func (l *errorLog) has(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.errs {
		if strings.Contains(e, s) {
			return true
		}
	}
	return false
}

// connectAs connects to the embedded server as u, with the seed file idlog generated.
func connectAs(t testing.TB, srv *eventbus.Server, u eventbus.User, extra ...nats.Option) (*nats.Conn, *errorLog) {
	t.Helper()
	opt, err := nats.NkeyOptionFromSeed(srv.CredentialsFile(u))
	if err != nil {
		t.Fatal(err)
	}
	errs := &errorLog{}
	nc, err := nats.Connect(srv.ClientURL(), append([]nats.Option{opt, nats.ErrorHandler(errs.handler)}, extra...)...)
	if err != nil {
		t.Fatalf("connect as %s: %v", u, err)
	}
	t.Cleanup(nc.Close)
	return nc, errs
}

// publishEvents runs a relay on srv until the events exist and are all in IDLOG_EVENTS.
func publishEvents(t testing.TB, srv *eventbus.Server, n int) (store, []eventstore.Event) {
	t.Helper()
	s := openSQLite(t)
	r, stop := runRelay(t, relayOptions(s, newClient(t, srv.ClientURL(), nil)))
	events := appendUsers(t, s, n)
	waitFor(t, 10*time.Second, "the relay to publish", func() bool { return r.Status().Position == events[n-1].GlobalPosition })
	stop()
	return s, events
}

// The attack: any local process connected to the embedded server without credentials. Now it
// is refused, and so is a key the server did not generate.
func TestEmbeddedServerRefusesAnonymousClients(t *testing.T) {
	t.Parallel()
	srv := startServer(t, t.TempDir(), 0)
	if nc, err := nats.Connect(srv.ClientURL(), nats.Timeout(2*time.Second)); !errors.Is(err, nats.ErrAuthorization) {
		if err == nil {
			nc.Close()
		}
		t.Errorf("anonymous connect = %v, want an authorization violation", err)
	}
	if nc, err := nats.Connect(srv.ClientURL(), nats.UserInfo("idlog", "idlog"), nats.Timeout(2*time.Second)); !errors.Is(err, nats.ErrAuthorization) {
		if err == nil {
			nc.Close()
		}
		t.Errorf("connect with a guessed password = %v, want an authorization violation", err)
	}
	stranger, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := stranger.Seed()
	strangerFile := filepath.Join(t.TempDir(), "stranger.nk")
	if err := os.WriteFile(strangerFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	opt, err := nats.NkeyOptionFromSeed(strangerFile)
	if err != nil {
		t.Fatal(err)
	}
	if nc, err := nats.Connect(srv.ClientURL(), opt, nats.Timeout(2*time.Second)); !errors.Is(err, nats.ErrAuthorization) {
		if err == nil {
			nc.Close()
		}
		t.Errorf("connect with an unknown NKEY = %v, want an authorization violation", err)
	}
	for _, u := range []eventbus.User{eventbus.UserIdlog, eventbus.UserReader, eventbus.UserMailer} {
		info, err := os.Stat(srv.CredentialsFile(u))
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", srv.CredentialsFile(u), info.Mode().Perm())
		}
	}
}

// A credentials file others may read is refused rather than used.
func TestCredentialsFileMustBePrivate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	srv := startServer(t, dir, 0)
	srv.Shutdown()
	f := srv.CredentialsFile(eventbus.UserReader)
	if err := os.Chmod(f, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := startEmbedded(eventbus.ServerOptions{StoreDir: dir}); !errors.Is(err, eventbus.ErrCredentials) || !strings.Contains(err.Error(), f) {
		t.Errorf("StartServer with a 0644 seed = %v, want ErrCredentials naming %s", err, f)
	}
	_, err := eventbus.Dial(eventbus.ClientOptions{URL: "nats://127.0.0.1:1", Credentials: f})
	if !errors.Is(err, eventbus.ErrCredentials) || !strings.Contains(err.Error(), "0600") {
		t.Errorf("Dial with a 0644 credentials file = %v, want ErrCredentials asking for 0600", err)
	}
}

// The reader tails the events (ordered and durable consumers) and verifies them, but cannot
// publish a forged UserRegistered, purge or delete, nor read the notifications.
func TestReaderCanTailButCannotForgeOrErase(t *testing.T) {
	t.Parallel()
	srv := startServer(t, t.TempDir(), 0)
	_, events := publishEvents(t, srv, 3)
	reader, violations := connectAs(t, srv, eventbus.UserReader)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var got []string
	err := eventbus.Consume(ctx, reader, eventbus.ConsumeOptions{FromStart: true, Max: 3, Keys: testSigner.Keys()}, func(m eventbus.Message) error {
		got = append(got, m.Subject)
		return nil
	})
	if err != nil || len(got) != 3 || got[0] != eventbus.Subject(events[0]) {
		t.Fatalf("reader's tail = %v, %v; want the 3 events", got, err)
	}
	got = nil
	err = eventbus.Consume(ctx, reader, eventbus.ConsumeOptions{FromStart: true, Max: 2, Durable: "reader-test", Keys: testSigner.Keys()}, func(m eventbus.Message) error {
		got = append(got, m.Subject)
		return nil
	})
	if err != nil || len(got) != 2 {
		t.Fatalf("reader's durable tail = %v, %v; want 2 events", got, err)
	}

	// The forged UserRegistered of the attack, with a made-up position.
	forged := []byte(`{"specversion":"1.0","id":"0190a0a0-0000-7000-8000-000000000000","source":"idlog","type":"UserRegistered","subject":"X","idlogposition":"999999","data":{"role":"admin"}}`)
	if err := reader.Publish("idlog.events.UserRegistered.X", forged); err != nil {
		t.Fatal(err)
	}
	reader.Flush()
	waitFor(t, 5*time.Second, "the server to report the permission violation", func() bool {
		return violations.has(`Permissions Violation for Publish to "idlog.events.UserRegistered.X"`)
	})
	js, err := jetstream.New(reader)
	if err != nil {
		t.Fatal(err)
	}
	pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
	_, err = js.Publish(pctx, "idlog.events.UserRegistered.X", forged)
	pcancel()
	if err == nil {
		t.Error("the reader's JetStream publish of a forged event was acknowledged")
	}

	st, err := js.Stream(ctx, eventbus.EventsStream)
	if err != nil {
		t.Fatalf("the reader cannot look the stream up: %v", err)
	}
	pctx, pcancel = context.WithTimeout(ctx, 2*time.Second)
	if err := st.Purge(pctx); err == nil {
		t.Error("the reader purged IDLOG_EVENTS")
	}
	if err := st.DeleteMsg(pctx, 1); err == nil {
		t.Error("the reader deleted message 1 of IDLOG_EVENTS")
	}
	pcancel()
	if !violations.has(`Permissions Violation for Publish to "$JS.API.STREAM.PURGE.IDLOG_EVENTS"`) {
		t.Errorf("no permission violation for the purge: %v", violations.errs)
	}

	// Notifications carry one-shot secrets: not the reader's.
	if _, err := reader.SubscribeSync("idlog.notifications.>"); err != nil {
		t.Fatal(err)
	}
	reader.Flush()
	waitFor(t, 5*time.Second, "the server to refuse the subscription", func() bool {
		return violations.has(`Permissions Violation for Subscription to "idlog.notifications.>"`)
	})
	if _, err := reader.SubscribeSync(eventbus.MailerInboxPrefix + ".>"); err != nil {
		t.Fatal(err)
	}
	reader.Flush()
	waitFor(t, 5*time.Second, "the server to refuse the mailer's inbox", func() bool {
		return violations.has(`Permissions Violation for Subscription to "` + eventbus.MailerInboxPrefix + `.>"`)
	})

	idlog := connect(t, srv.ClientURL())
	if msgs := streamMessages(t, idlog); len(msgs) != 3 {
		t.Errorf("IDLOG_EVENTS holds %d messages after the attacks, want 3", len(msgs))
	}
}

// Only the mailer reads IDLOG_NOTIFICATIONS; the reader can neither consume nor fetch from it.
func TestOnlyTheMailerReadsNotifications(t *testing.T) {
	t.Parallel()
	srv := startServer(t, t.TempDir(), 0)
	n, err := eventbus.NewNotifier(eventbus.NotifierOptions{Client: newClient(t, srv.ClientURL(), nil)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.Notify(ctx, "password_reset", "ann@example.com", map[string]string{"token": "one-shot-secret"}); err != nil {
		t.Fatal(err)
	}

	reader, _ := connectAs(t, srv, eventbus.UserReader)
	rjs, err := jetstream.New(reader)
	if err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
	if _, err := rjs.OrderedConsumer(rctx, eventbus.NotificationsStream, jetstream.OrderedConsumerConfig{}); err == nil {
		t.Error("the reader made a consumer on IDLOG_NOTIFICATIONS")
	}
	if _, err := rjs.Stream(rctx, eventbus.NotificationsStream); err == nil {
		t.Error("the reader looked IDLOG_NOTIFICATIONS up")
	}
	rcancel()

	mailer, _ := connectAs(t, srv, eventbus.UserMailer, nats.CustomInboxPrefix(eventbus.MailerInboxPrefix))
	mjs, err := jetstream.New(mailer)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := mjs.OrderedConsumer(ctx, eventbus.NotificationsStream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatalf("the mailer cannot consume notifications: %v", err)
	}
	m, err := cons.Next(jetstream.FetchMaxWait(10 * time.Second))
	if err != nil {
		t.Fatalf("the mailer got no notification: %v", err)
	}
	if !bytes.Contains(m.Data(), []byte("one-shot-secret")) {
		t.Errorf("the mailer got %s, want the token", m.Data())
	}
	if _, err := eventbus.VerifyEvent(testSigner.Keys(), "", m.Data()); err != nil {
		t.Errorf("the notification does not verify: %v", err)
	}
	if err := mailer.Publish("idlog.notifications.password_reset", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	mailer.Flush()
	if c := notificationCount(t, connect(t, srv.ClientURL())); c != 1 {
		t.Errorf("IDLOG_NOTIFICATIONS holds %d messages after the mailer published, want 1", c)
	}
}

func notificationCount(t testing.TB, nc *nats.Conn) uint64 {
	t.Helper()
	js, _ := jetstream.New(nc)
	st, err := js.Stream(context.Background(), eventbus.NotificationsStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// IDLOG_EVENTS and IDLOG_AUDIT deny purge and delete to everyone, idlog's own user included.
func TestLogStreamsDenyPurgeAndDelete(t *testing.T) {
	t.Parallel()
	srv := startServer(t, t.TempDir(), 0)
	publishEvents(t, srv, 3)
	pub, err := eventbus.NewAuditPublisher(newClient(t, srv.ClientURL(), nil))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := pub.PublishCheckpoint(ctx, audit.Checkpoint{Ordinal: 1, Position: 1, SealedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(connect(t, srv.ClientURL())) // as idlog
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{eventbus.EventsStream, eventbus.AuditStream} {
		st, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		before := st.CachedInfo().State.Msgs
		if cfg := st.CachedInfo().Config; !cfg.DenyDelete || !cfg.DenyPurge {
			t.Errorf("%s: DenyDelete %v, DenyPurge %v; want both", name, cfg.DenyDelete, cfg.DenyPurge)
		}
		if err := st.Purge(ctx); err == nil {
			t.Errorf("idlog purged %s", name)
		}
		if err := st.DeleteMsg(ctx, 1); err == nil {
			t.Errorf("idlog deleted message 1 of %s", name)
		}
		info, err := st.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.State.Msgs != before || before == 0 {
			t.Errorf("%s holds %d messages, had %d", name, info.State.Msgs, before)
		}
	}
}

// A stream made by an older idlog, without the denials, gets them at the next start.
func TestExistingEventsStreamGetsTheDenials(t *testing.T) {
	t.Parallel()
	srv := startServer(t, t.TempDir(), 0)
	js, err := jetstream.New(connect(t, srv.ClientURL()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: eventbus.EventsStream, Subjects: []string{eventbus.EventsSubjects}, Duplicates: 2 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	publishEvents(t, srv, 1)
	st, err := js.Stream(ctx, eventbus.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	if cfg := st.CachedInfo().Config; !cfg.DenyDelete || !cfg.DenyPurge {
		t.Errorf("DenyDelete %v, DenyPurge %v after the relay started; want both", cfg.DenyDelete, cfg.DenyPurge)
	}
	if err := st.Purge(ctx); err == nil {
		t.Error("the updated stream was purged")
	}
}

// A genuine event verifies; a tampered body, another key's signature, a stolen signature, no
// signature or another subject do not.
func TestEventSignatures(t *testing.T) {
	t.Parallel()
	srv := startServer(t, t.TempDir(), 0)
	publishEvents(t, srv, 1)
	msg := streamMessages(t, connect(t, srv.ClientURL()))[0]
	keys := testSigner.Keys()
	ce, err := eventbus.VerifyEvent(keys, msg.Subject, msg.Raw)
	if err != nil || ce.ID != msg.Event.ID || ce.KeyID != testSigner.KeyID() {
		t.Fatalf("VerifyEvent(genuine) = %+v, %v; want the event", ce, err)
	}
	// The one-line copy idlog events tail prints verifies without its subject.
	if _, err := eventbus.VerifyEvent(keys, "", append(bytes.Clone(msg.Raw), '\n')); err != nil {
		t.Errorf("VerifyEvent(tail line) = %v", err)
	}

	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	other, err := eventbus.NewEventSigner(otherKey)
	if err != nil {
		t.Fatal(err)
	}
	e := eventstore.Event{Type: "UserRegistered", StreamID: "user-ID0000000001", GlobalPosition: 999999, Data: []byte(`{"role":"admin"}`)}
	forgedByOther := eventbus.ExportAppendCloudEvent(nil, other, "idlog", e)
	unsigned := eventbus.ExportAppendUnsignedCloudEvent(nil, "idlog", e)
	// Another key's signature presented under idlog's key id.
	stolenKid := bytes.ReplaceAll(forgedByOther, []byte(other.KeyID()), []byte(testSigner.KeyID()))
	tampered := bytes.Replace(msg.Raw, []byte(`"role":"member"`), []byte(`"role":"admin"`), 1)
	if bytes.Equal(tampered, msg.Raw) {
		t.Fatalf("nothing to tamper with in %s", msg.Raw)
	}
	for name, tt := range map[string]struct {
		subject string
		data    []byte
		want    string
	}{
		"tampered body":        {msg.Subject, tampered, "does not match"},
		"another key":          {"idlog.events.UserRegistered.ID0000000001", forgedByOther, "unknown key"},
		"another key's sig":    {"idlog.events.UserRegistered.ID0000000001", stolenKid, "does not match"},
		"unsigned":             {"idlog.events.UserRegistered.ID0000000001", unsigned, "not signed"},
		"moved to another uid": {"idlog.events.UserRegistered.ID0000000002", msg.Raw, "belongs on"},
		"trailing member":      {msg.Subject, append(bytes.TrimSuffix(msg.Raw, []byte("}")), `,"x":1}`...), "last member"},
		"truncated signature":  {msg.Subject, append(msg.Raw[:len(msg.Raw)-10:len(msg.Raw)-10], `"}`...), "no Ed25519 signature"},
	} {
		if _, err := eventbus.VerifyEvent(keys, tt.subject, tt.data); !errors.Is(err, eventbus.ErrEventSignature) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: VerifyEvent = %v, want ErrEventSignature saying %q", name, err, tt.want)
		}
	}
	// After a key change, with the old key kept as a previous one, old events still verify.
	rotated, err := eventbus.NewEventSigner(otherKey, keys[testSigner.KeyID()])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eventbus.VerifyEvent(rotated.Keys(), msg.Subject, msg.Raw); err != nil || rotated.KeyID() != other.KeyID() {
		t.Errorf("VerifyEvent with the previous key kept = %v (signing with %s)", err, rotated.KeyID())
	}
	// The JWKS round-trips into the keys that verify.
	doc, _ := json.Marshal(testSigner.JWKS())
	parsed, err := eventbus.ParseEventKeys(doc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eventbus.VerifyEvent(parsed, msg.Subject, msg.Raw); err != nil {
		t.Errorf("VerifyEvent with the parsed JWKS = %v", err)
	}
}

// Messages the relay publishes together share one signature, each with its inclusion path. A
// path, index or size that is not the message's own, a neighbour's value, a root signature
// without its path, or a second spelling of the same value does not verify, neither alone nor
// with a verifier that remembers the batch's signatures.
func TestBatchSignatureForgeries(t *testing.T) {
	t.Parallel()
	batch := make([]eventstore.Event, 20) // a tree of 16, then one of 4
	for i := range batch {
		batch[i] = eventstore.Event{ID: uuid.New(), Type: "UserDataUpdated", StreamID: fmt.Sprintf("user-ID%010X", i), StreamVersion: 2,
			GlobalPosition: uint64(i + 1), SchemaVersion: 1, Data: json.RawMessage(fmt.Sprintf(`{"role":"member","n":%d}`, i)), RecordedAt: time.Now()}
	}
	bodies := eventbus.ExportEncodeBatch(testSigner, eventbus.DefaultSource, batch)
	keys := testSigner.Keys()
	value := func(b []byte) string {
		i := bytes.LastIndex(b, []byte(`"idlogsignature":"`)) + len(`"idlogsignature":"`)
		return string(b[i : len(b)-2])
	}
	with := func(b []byte, v string) []byte { return []byte(strings.Replace(string(b), value(b), v, 1)) }
	warm := eventbus.NewEventVerifier(keys) // it remembers the batch's root signatures
	for i, b := range bodies {
		if _, err := eventbus.VerifyEvent(keys, eventbus.Subject(batch[i]), b); err != nil {
			t.Fatalf("message %d of the batch: %v", i, err)
		}
		if _, err := warm.Verify(eventbus.Subject(batch[i]), b); err != nil {
			t.Fatalf("message %d of the batch, verifier: %v", i, err)
		}
	}
	m := bodies[3]
	parts := strings.Split(value(m), ".")
	if len(parts) != 4 || parts[1] != "3" || parts[2] != "16" || len(parts[3]) != 171 {
		t.Fatalf("message 3 of 20 has the value %s, want <sig>.3.16.<4 hashes>", value(m))
	}
	join := func(p ...string) string { return strings.Join(p, ".") }
	path, err := base64.RawURLEncoding.DecodeString(parts[3])
	if err != nil {
		t.Fatal(err)
	}
	more := base64.RawURLEncoding.EncodeToString(append(path, path[:32]...))
	for name, tt := range map[string]struct {
		data []byte
		want string
	}{
		"tampered body":        {bytes.Replace(m, []byte(`"role":"member"`), []byte(`"role":"admin"`), 1), "does not match"},
		"a neighbour's value":  {with(m, value(bodies[4])), "does not match"},
		"another tree's value": {with(m, value(bodies[17])), "does not match"},
		"another index":        {with(m, join(parts[0], "2", parts[2], parts[3])), "does not match"},
		"another size":         {with(m, join(parts[0], parts[1], "17", parts[3])), "does not fit"},
		"a hash short":         {with(m, join(parts[0], parts[1], parts[2], parts[3][:128])), "does not fit"},
		"a hash more":          {with(m, join(parts[0], parts[1], parts[2], more)), "does not fit"},
		"the root's signature": {with(m, parts[0]), "does not match"},
		"a leading zero":       {with(m, join(parts[0], "03", parts[2], parts[3])), "no Ed25519 signature"},
		"a sign":               {with(m, join(parts[0], "+3", parts[2], parts[3])), "no Ed25519 signature"},
		"a tree of one":        {with(m, join(parts[0], "0", "1", "")), "no Ed25519 signature"},
		"an index past":        {with(m, join(parts[0], "16", parts[2], parts[3])), "no Ed25519 signature"},
		"padding":              {with(m, join(parts[0], parts[1], parts[2], parts[3]+"=")), "no Ed25519 signature"},
		"a part more":          {with(m, value(m)+".0"), "no Ed25519 signature"},
	} {
		if _, err := eventbus.VerifyEvent(keys, "", tt.data); !errors.Is(err, eventbus.ErrEventSignature) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: VerifyEvent = %v, want ErrEventSignature saying %q", name, err, tt.want)
		}
		if _, err := warm.Verify("", tt.data); !errors.Is(err, eventbus.ErrEventSignature) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: a verifier that has seen the batch says %v, want ErrEventSignature saying %q", name, err, tt.want)
		}
	}
}

// On a server that lets anyone publish (an external one, anonymous), a consumer with the keys
// skips forged events and hands over only idlog's.
func TestConsumeSkipsForgedEvents(t *testing.T) {
	t.Parallel()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(ns.Shutdown)
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS not ready")
	}
	url := ns.ClientURL()
	s := openSQLite(t)
	r, stop := runRelay(t, relayOptions(s, newClient(t, url, nil)))
	events := appendUsers(t, s, 2)
	waitFor(t, 10*time.Second, "the relay to publish", func() bool { return r.Status().Position == events[1].GlobalPosition })
	stop()

	attacker := connect(t, url)
	js, _ := jetstream.New(attacker)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	other, _ := eventbus.NewEventSigner(otherKey)
	forged := eventstore.Event{Type: "UserRegistered", StreamID: "user-IDFFFFFFFFFF", GlobalPosition: 999999, Data: []byte(`{"role":"admin"}`)}
	for _, body := range [][]byte{
		eventbus.ExportAppendUnsignedCloudEvent(nil, "idlog", forged),
		eventbus.ExportAppendCloudEvent(nil, other, "idlog", forged),
	} {
		if _, err := js.Publish(ctx, eventbus.Subject(forged), body); err != nil {
			t.Fatalf("the anonymous attacker could not publish: %v", err)
		}
	}

	var handled, rejected []string
	cctx, ccancel := context.WithCancel(ctx)
	defer ccancel()
	err = eventbus.Consume(cctx, attacker, eventbus.ConsumeOptions{
		FromStart: true, Keys: testSigner.Keys(),
		Rejected: func(m eventbus.Message, err error) {
			rejected = append(rejected, m.Subject)
			if len(rejected) == 2 {
				ccancel()
			}
		},
	}, func(m eventbus.Message) error {
		handled = append(handled, m.Subject)
		return nil
	})
	if err != nil || len(handled) != 2 || len(rejected) != 2 || handled[0] != eventbus.Subject(events[0]) {
		t.Errorf("Consume = %v, handled %v, rejected %v; want the 2 events handled and the 2 forgeries rejected", err, handled, rejected)
	}
}

// No change to a signed message, however small, keeps it valid: a message that verifies is the
// one idlog signed (but for trailing white space, which VerifyEvent ignores), and nothing
// panics on arbitrary input.
func FuzzVerifyEvent(f *testing.F) {
	e := eventstore.Event{Type: "UserRegistered", StreamID: "user-ID1A2B3C4D5E", GlobalPosition: 7, Data: []byte(`{"uid":"ID1A2B3C4D5E","role":"member"}`)}
	genuine := [][]byte{eventbus.ExportAppendCloudEvent(nil, testSigner, "idlog", e)}
	// And three events published together: one signature, three inclusion paths.
	e2, e3 := e, e
	e2.GlobalPosition, e3.GlobalPosition = 8, 9
	genuine = append(genuine, eventbus.ExportEncodeBatch(testSigner, "idlog", []eventstore.Event{e, e2, e3})...)
	for _, g := range genuine {
		f.Add(g)
	}
	f.Add(eventbus.ExportAppendUnsignedCloudEvent(nil, "idlog", e))
	f.Add([]byte(`{"idlogsignature":"x"}`))
	keys := testSigner.Keys()
	// A verifier that has seen the batch: remembering its root's signature must not make it
	// accept anything VerifyEvent refuses.
	verifier := eventbus.NewEventVerifier(keys)
	for _, g := range genuine {
		if _, err := verifier.Verify("", g); err != nil {
			f.Fatal(err)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ce, err := eventbus.VerifyEvent(keys, "", data)
		if _, verr := verifier.Verify("", data); (err == nil) != (verr == nil) {
			t.Fatalf("VerifyEvent says %v, the verifier that saw the batch %v: %q", err, verr, data)
		}
		if err != nil {
			if !errors.Is(err, eventbus.ErrEventSignature) {
				t.Fatalf("VerifyEvent error %v does not match ErrEventSignature", err)
			}
			return
		}
		trimmed := bytes.TrimRight(data, " \t\r\n")
		if !slices.ContainsFunc(genuine, func(g []byte) bool { return bytes.Equal(trimmed, g) }) {
			t.Fatalf("a message idlog did not sign verifies: %q (event %+v)", data, ce)
		}
	})
}
