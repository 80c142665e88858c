package eventbus_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/idlog/idlog/eventbus"
)

// The NATS of docker-compose.yml (nats-server.conf) is locked down as the embedded server is:
// no anonymous client, the reader tails but cannot forge nor purge, idlog publishes.
func TestComposeNATSConfigLocksDownTheBus(t *testing.T) {
	t.Setenv("IDLOG_NATS_PASSWORD", "idlog-pw")
	t.Setenv("IDLOG_NATS_READER_PASSWORD", "reader-pw")
	t.Setenv("IDLOG_NATS_MAILER_PASSWORD", "mailer-pw")
	o, err := server.ProcessConfigFile("../nats-server.conf")
	if err != nil {
		t.Fatal(err)
	}
	o.Host, o.Port, o.HTTPPort, o.StoreDir, o.NoLog, o.NoSigs = "127.0.0.1", -1, 0, t.TempDir(), true, true
	ns, err := server.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(ns.Shutdown)
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS not ready")
	}
	hostPort := strings.TrimPrefix(ns.ClientURL(), "nats://")
	if nc, err := nats.Connect(ns.ClientURL()); !errors.Is(err, nats.ErrAuthorization) {
		if err == nil {
			nc.Close()
		}
		t.Errorf("anonymous connect = %v, want an authorization violation", err)
	}

	s := openSQLite(t)
	r, stop := runRelay(t, relayOptions(s, newClient(t, fmt.Sprintf("nats://idlog:idlog-pw@%s", hostPort), nil)))
	events := appendUsers(t, s, 2)
	waitFor(t, 10*time.Second, "the relay to publish", func() bool { return r.Status().Position == events[1].GlobalPosition })
	stop()

	errs := &errorLog{}
	reader, err := nats.Connect(fmt.Sprintf("nats://reader:reader-pw@%s", hostPort), nats.ErrorHandler(errs.handler))
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n := 0
	if err := eventbus.Consume(ctx, reader, eventbus.ConsumeOptions{FromStart: true, Max: 2, Keys: testSigner.Keys()}, func(eventbus.Message) error { n++; return nil }); err != nil || n != 2 {
		t.Fatalf("the reader's tail = %d events, %v; want 2", n, err)
	}
	reader.Publish("idlog.events.UserRegistered.X", []byte(`{}`))
	reader.Flush()
	waitFor(t, 5*time.Second, "the permission violation", func() bool {
		return errs.has(`Permissions Violation for Publish to "idlog.events.UserRegistered.X"`)
	})
	js, _ := jetstream.New(reader)
	st, err := js.Stream(ctx, eventbus.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
	defer pcancel()
	if err := st.Purge(pctx); err == nil {
		t.Error("the reader purged IDLOG_EVENTS")
	}
	if c := streamCount(t, connect(t, fmt.Sprintf("nats://idlog:idlog-pw@%s", hostPort))); c != 2 {
		t.Errorf("IDLOG_EVENTS holds %d messages, want 2", c)
	}
}
