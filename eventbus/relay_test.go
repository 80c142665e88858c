package eventbus_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/idlog/idlog/eventbus"
	"github.com/idlog/idlog/eventstore"
)

func TestRelayPublishesEachEventAsACloudEvent(t *testing.T) {
	t.Parallel()
	s := openSQLite(t)
	srv := startServer(t, t.TempDir(), 0)
	before := appendUsers(t, s, 3) // stored before the relay starts
	r, _ := runRelay(t, relayOptions(s, newClient(t, srv.ClientURL(), nil)))
	after := appendUsers(t, s, 3) // and while it runs
	last := after[len(after)-1].GlobalPosition
	waitFor(t, 10*time.Second, "the relay to reach the last event", func() bool { return r.Status().Position == last })
	waitFor(t, 5*time.Second, "the checkpoint to be saved", func() bool {
		pos, err := s.Checkpoint(context.Background(), eventbus.DefaultCheckpointName)
		return err == nil && pos == last
	})

	nc := connect(t, srv.ClientURL())
	checkExactlyOnceInOrder(t, nc, s)
	msgs := streamMessages(t, nc)
	stored := storedEvents(t, s)
	for i, m := range msgs {
		e := stored[i]
		uid := strings.TrimPrefix(e.StreamID, "user-")
		if want := "idlog.events.UserRegistered." + uid; m.Subject != want {
			t.Errorf("subject %q, want %q", m.Subject, want)
		}
		if got := m.Header.Get("Nats-Msg-Id"); got != e.ID.String() {
			t.Errorf("Nats-Msg-Id %q, want the event id %s", got, e.ID)
		}
		// One run published them all: each names its predecessor, so none is stored after a gap.
		if got := m.Header.Get("Nats-Expected-Last-Msg-Id"); i > 0 && got != stored[i-1].ID.String() {
			t.Errorf("message %d expects last message %q, want %s", i, got, stored[i-1].ID)
		}
		ce := m.Event
		if ce.SpecVersion != "1.0" || ce.Source != "idlog" || ce.Type != "UserRegistered" || ce.Subject != uid ||
			ce.DataContentType != "application/json" || !ce.Time.Equal(e.RecordedAt) ||
			ce.Stream != e.StreamID || ce.StreamVersion != 1 || ce.SchemaVersion != 1 ||
			ce.Actor != uid || ce.ActorRole != "member" || ce.CorrelationID != "corr-"+uid {
			t.Errorf("CloudEvent %+v does not match event %+v", ce, e)
		}
		var data map[string]any
		if err := json.Unmarshal(ce.Data, &data); err != nil {
			t.Fatal(err)
		}
		if data["uid"] != uid || data["role"] != "member" {
			t.Errorf("data %s lost the event's fields", ce.Data)
		}
		if _, ok := data["password_hash"]; ok || strings.Contains(string(m.Raw), "argon2id") {
			t.Errorf("the password hash left idlog: %s", m.Raw)
		}
		if strings.Contains(string(m.Raw), "192.0.2.1") {
			t.Errorf("the client's IP address left idlog: %s", m.Raw)
		}
	}
	if st := r.Status(); st.Published != uint64(len(before)+len(after)) || st.Duplicates != 0 || !st.Connected || st.Err != nil {
		t.Errorf("status %+v, want %d published, none doubled, connected", st, len(before)+len(after))
	}
	if err := r.Check(context.Background()); err != nil {
		t.Errorf("Check = %v, want nil", err)
	}
}

// NATS goes down while 1,000 events are appended, and comes back on the same store directory:
// the stream holds every event exactly once, in order.
func TestRelayCatchesUpAfterNATSWasDown(t *testing.T) {
	t.Parallel()
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			s := b.open(t)
			dir := t.TempDir()
			srv, err := startEmbedded(eventbus.ServerOptions{StoreDir: dir})
			if err != nil {
				t.Fatal(err)
			}
			port := portOf(t, srv)
			url := srv.ClientURL()
			r, _ := runRelay(t, relayOptions(s, newClient(t, url, nil)))

			// Appends run throughout: some before the outage, most during it, some published
			// while the server goes away, mid-flight.
			const total = 1000
			appended := make(chan int, total)
			errs := make(chan error, 1)
			go func() {
				defer close(appended)
				for i := range total {
					if _, err := s.Append(context.Background(), eventstore.Append{
						Stream: fmt.Sprintf("user-ID%010X", i), Expected: eventstore.NoStream,
						Events: []eventstore.NewEvent{{Type: "UserRegistered", SchemaVersion: 1, Data: json.RawMessage(`{}`)}},
					}); err != nil {
						errs <- err
						return
					}
					appended <- i
				}
			}()
			for i := range appended {
				if i == 100 {
					srv.Shutdown()
				}
			}
			select {
			case err := <-errs:
				t.Fatalf("an append failed while NATS was down: %v", err)
			default:
			}
			if st := r.Status(); st.Connected {
				t.Errorf("status %+v, want not connected", st)
			}
			waitFor(t, 5*time.Second, "the relay to report the outage", func() bool { return r.Check(context.Background()) != nil })
			if err := r.Check(context.Background()); !errors.Is(err, eventbus.ErrNotConnected) || !strings.Contains(err.Error(), url) {
				t.Errorf("Check = %v, want ErrNotConnected naming %s", err, url)
			}

			if r.Status().Position >= storedEvents(t, s)[total-1].GlobalPosition {
				t.Fatal("the relay published everything although NATS was down")
			}
			startServer(t, dir, port) // the same directory: the stream as it was
			log := storedEvents(t, s)
			last := log[len(log)-1].GlobalPosition
			waitFor(t, 2*time.Minute, "the relay to catch up", func() bool { return r.Status().Position == last })
			checkExactlyOnceInOrder(t, connect(t, url), s)
			if err := r.Check(context.Background()); err != nil {
				t.Errorf("Check after the catch-up = %v, want nil", err)
			}
		})
	}
}

// A relay stopped after publishing and before saving its checkpoint republishes on restart, and
// JetStream keeps one copy of each event.
func TestRelayRestartedBeforeItsCheckpointRepublishesOnce(t *testing.T) {
	t.Parallel()
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			s := b.open(t)
			srv := startServer(t, t.TempDir(), 0)
			nc := connect(t, srv.ClientURL())
			events := appendUsers(t, s, 50)

			o := relayOptions(s, newClient(t, srv.ClientURL(), nil))
			o.Checkpoints = forgetfulCheckpoints{s}
			first, stop := runRelay(t, o)
			waitFor(t, 10*time.Second, "the first relay to publish every event", func() bool { return streamCount(t, nc) == 50 })
			stop()
			if pos, err := s.Checkpoint(context.Background(), eventbus.DefaultCheckpointName); err != nil || pos != 0 {
				t.Fatalf("checkpoint = %d, %v; want none saved", pos, err)
			}
			if st := first.Status(); st.Published != 50 {
				t.Fatalf("first relay published %d, want 50", st.Published)
			}

			second, _ := runRelay(t, relayOptions(s, newClient(t, srv.ClientURL(), nil)))
			more := appendUsers(t, s, 5)
			last := more[len(more)-1].GlobalPosition
			waitFor(t, 10*time.Second, "the second relay to reach the end", func() bool { return second.Status().Position == last })
			if st := second.Status(); st.Duplicates != uint64(len(events)) || st.Published != uint64(len(more)) {
				t.Errorf("second relay: %d republished and dropped, %d new; want %d and %d", st.Duplicates, st.Published, len(events), len(more))
			}
			checkExactlyOnceInOrder(t, nc, s)
		})
	}
}

// When JetStream may have forgotten the ids of events the stream holds past the checkpoint, the
// relay starts after them instead of storing them twice.
func TestRelaySkipsWhatTheStreamHoldsPastTheDuplicateWindow(t *testing.T) {
	t.Parallel()
	s := openSQLite(t)
	srv := startServer(t, t.TempDir(), 0)
	nc := connect(t, srv.ClientURL())
	appendUsers(t, s, 20)

	o := relayOptions(s, newClient(t, srv.ClientURL(), nil))
	o.Checkpoints = forgetfulCheckpoints{s}
	o.DuplicateWindow = time.Second
	_, stop := runRelay(t, o)
	waitFor(t, 10*time.Second, "the first relay to publish every event", func() bool { return streamCount(t, nc) == 20 })
	stop()
	time.Sleep(1500 * time.Millisecond) // past the duplicate window

	o = relayOptions(s, newClient(t, srv.ClientURL(), nil))
	o.DuplicateWindow = time.Second
	second, _ := runRelay(t, o)
	more := appendUsers(t, s, 3)
	waitFor(t, 10*time.Second, "the second relay to reach the end", func() bool { return second.Status().Position == more[2].GlobalPosition })
	if st := second.Status(); st.Duplicates != 0 || st.Published != 3 {
		t.Errorf("second relay: %d republished, %d new; want 0 and 3", st.Duplicates, st.Published)
	}
	checkExactlyOnceInOrder(t, nc, s)
}

// freePort returns a port nothing listens on.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// NATS unreachable at start-up: the error names the URL without its password, appends keep
// working, the relay keeps trying with pauses, and publishes everything once NATS answers.
func TestRelayStartsWhileNATSIsUnreachable(t *testing.T) {
	t.Parallel()
	s := openSQLite(t)
	port := freePort(t)
	url := fmt.Sprintf("nats://alice:s3cret-pw@127.0.0.1:%d", port)
	shown := fmt.Sprintf("nats://alice:xxxxx@127.0.0.1:%d", port)
	var logs logBuffer
	client := newClient(t, url, logs.logger())
	r, _ := runRelay(t, relayOptions(s, client))

	events := appendUsers(t, s, 20)
	waitFor(t, 5*time.Second, "the lag to count the waiting events", func() bool { return r.Status().LagEvents == 20 })
	err := r.Check(context.Background())
	var cerr *eventbus.ConnectError
	if !errors.Is(err, eventbus.ErrNotConnected) || !errors.As(err, &cerr) || !strings.Contains(err.Error(), shown) {
		t.Errorf("Check = %v, want a ConnectError naming %s", err, shown)
	}
	waitFor(t, 5*time.Second, "several connection attempts", func() bool {
		return strings.Count(logs.String(), "cannot connect to NATS, retrying") >= 3
	})
	if strings.Contains(logs.String()+err.Error(), "s3cret-pw") {
		t.Errorf("the password shows:\n%v\n%s", err, logs.String())
	}
	if st := r.Status(); st.Connected || st.LagSeconds <= 0 {
		t.Errorf("status %+v, want disconnected with a lag", st)
	}
	m := gather(t, r)
	if m["idlog_eventbus_nats_connected"] != 0 || m["idlog_eventbus_relay_lag_events"] != 20 || m["idlog_eventbus_relay_lag_seconds"] <= 0 {
		t.Errorf("metrics %v, want disconnected and a lag of 20 events", m)
	}

	startAuthServer(t, port, "alice", "s3cret-pw")
	last := events[len(events)-1].GlobalPosition
	waitFor(t, 15*time.Second, "the relay to publish once NATS answers", func() bool { return r.Status().Position == last })
	checkExactlyOnceInOrder(t, connect(t, url), s)
	waitFor(t, 5*time.Second, "the lag to fall to 0", func() bool { return r.Status().LagEvents == 0 })
	if m := gather(t, r); m["idlog_eventbus_nats_connected"] != 1 || m["idlog_eventbus_relay_published_total"] != 20 {
		t.Errorf("metrics %v, want connected and 20 published", m)
	}
}

func TestRelayWithWrongCredentials(t *testing.T) {
	t.Parallel()
	s := openSQLite(t)
	srv, err := startEmbedded(eventbus.ServerOptions{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	srv.Shutdown()
	// The same port, now behind a password.
	port := portOf(t, srv)
	authed := startAuthServer(t, port, "alice", "right-pw")
	defer authed.Shutdown()

	url := fmt.Sprintf("nats://alice:wrong-pw@127.0.0.1:%d", port)
	var logs logBuffer
	r, _ := runRelay(t, relayOptions(s, newClient(t, url, logs.logger())))
	appendUsers(t, s, 5) // appends do not depend on NATS
	waitFor(t, 5*time.Second, "several connection attempts", func() bool {
		return strings.Count(logs.String(), "cannot connect to NATS, retrying") >= 3
	})
	err = r.Check(context.Background())
	shown := fmt.Sprintf("nats://alice:xxxxx@127.0.0.1:%d", port)
	if !errors.Is(err, eventbus.ErrNotConnected) || !errors.Is(err, nats.ErrAuthorization) || !strings.Contains(err.Error(), shown) {
		t.Errorf("Check = %v, want an authorization error naming %s", err, shown)
	}
	if strings.Contains(logs.String()+err.Error(), "wrong-pw") {
		t.Errorf("the password shows:\n%v\n%s", err, logs.String())
	}
	waitFor(t, 5*time.Second, "the lag to count the waiting events", func() bool { return r.Status().LagEvents == 5 })
	if st := r.Status(); st.Position != 0 || st.Connected {
		t.Errorf("status %+v, want nothing published, not connected", st)
	}
}

// A stream that exists with a configuration idlog cannot adopt is reported, not overwritten.
func TestRelayReportsAConflictingStream(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  jetstream.StreamConfig
		want []string
	}{
		{"memory storage", jetstream.StreamConfig{Name: eventbus.EventsStream, Subjects: []string{"idlog.events.>"}, Storage: jetstream.MemoryStorage}, []string{"IDLOG_EVENTS", "Memory storage", "File"}},
		{"subjects taken", jetstream.StreamConfig{Name: "EVERYTHING", Subjects: []string{"idlog.>"}, Storage: jetstream.FileStorage}, []string{"IDLOG_EVENTS", "overlap"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := openSQLite(t)
			srv := startServer(t, t.TempDir(), 0)
			js, err := jetstream.New(connect(t, srv.ClientURL()))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := js.CreateStream(context.Background(), tt.cfg); err != nil {
				t.Fatal(err)
			}
			r, _ := runRelay(t, relayOptions(s, newClient(t, srv.ClientURL(), nil)))
			appendUsers(t, s, 1)
			waitFor(t, 5*time.Second, "the relay to report the conflict", func() bool {
				return errors.Is(r.Check(context.Background()), eventbus.ErrStreamConfig)
			})
			err = r.Check(context.Background())
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Check = %q, want it to mention %q", err, w)
				}
			}
			if st := r.Status(); st.Position != 0 || !errors.Is(st.Err, eventbus.ErrStreamConfig) {
				t.Errorf("status %+v, want nothing published and the conflict", st)
			}
		})
	}
}

func TestRelayOptionsAreValidated(t *testing.T) {
	t.Parallel()
	s := openSQLite(t)
	c := newClient(t, "nats://127.0.0.1:1", nil)
	cases := map[string]eventbus.RelayOptions{
		"Store, Checkpoints and Client are required":          {Checkpoints: s, Client: c},
		"DuplicateWindow (10m0s) cannot exceed MaxAge (5m0s)": {Store: s, Checkpoints: s, Client: c, MaxAge: 5 * time.Minute, DuplicateWindow: 10 * time.Minute},
		"MaxBytes (-1)": {Store: s, Checkpoints: s, Client: c, MaxBytes: -1},
	}
	for want, o := range cases {
		_, err := eventbus.NewRelay(o)
		if !errors.Is(err, eventbus.ErrInvalidOptions) || !strings.Contains(err.Error(), want) {
			t.Errorf("NewRelay = %v, want ErrInvalidOptions saying %q", err, want)
		}
	}
}

// gather collects the relay's metrics by name.
func gather(t *testing.T, r *eventbus.Relay) map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(r); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			switch {
			case m.GetGauge() != nil:
				out[f.GetName()] = m.GetGauge().GetValue()
			case m.GetCounter() != nil:
				out[f.GetName()] = m.GetCounter().GetValue()
			}
		}
	}
	return out
}

// A stream kept while the event store starts afresh holds positions of another log: the relay
// publishes the new log from its start, skipping nothing.
func TestRelayDoesNotSkipForAnotherLogsPositions(t *testing.T) {
	t.Parallel()
	srv := startServer(t, t.TempDir(), 0)
	nc := connect(t, srv.ClientURL())
	old := openSQLite(t)
	appendUsers(t, old, 20)
	o := relayOptions(old, newClient(t, srv.ClientURL(), nil))
	o.DuplicateWindow = time.Second
	_, stop := runRelay(t, o)
	waitFor(t, 10*time.Second, "the old log in the stream", func() bool { return streamCount(t, nc) == 20 })
	stop()
	time.Sleep(1500 * time.Millisecond) // past the duplicate window

	fresh := openSQLite(t)
	events := appendUsers(t, fresh, 25) // past the old log's last position
	o = relayOptions(fresh, newClient(t, srv.ClientURL(), nil))
	o.DuplicateWindow = time.Second
	r, _ := runRelay(t, o)
	waitFor(t, 10*time.Second, "the fresh log in the stream", func() bool { return r.Status().Position == events[24].GlobalPosition })
	msgs := streamMessages(t, nc)
	if len(msgs) != 45 {
		t.Fatalf("the stream holds %d messages, want the old 20 and the fresh 25", len(msgs))
	}
	for i, e := range events {
		if got := msgs[20+i].Event.ID; got != e.ID.String() {
			t.Errorf("message %d is %s, want the fresh log's event %s", 20+i, got, e.ID)
		}
	}
}
