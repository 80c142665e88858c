package eventbus_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/idlog/idlog/eventbus"
	"github.com/idlog/idlog/eventstore"
)

// consume runs Consume to its end and returns the ids of the events it handled.
func consume(t *testing.T, url string, o eventbus.ConsumeOptions) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var ids []string
	err := eventbus.Consume(ctx, connect(t, url), o, func(m eventbus.Message) error {
		var ce eventbus.CloudEvent
		if err := json.Unmarshal(m.Data, &ce); err != nil {
			return err
		}
		if m.Subject != "idlog.events."+ce.Type+"."+ce.Subject || m.Sequence == 0 {
			t.Errorf("message on %s (sequence %d) holds %s of %s", m.Subject, m.Sequence, ce.Type, ce.Subject)
		}
		ids = append(ids, ce.ID)
		return nil
	})
	if err != nil {
		t.Fatalf("Consume(%+v) = %v", o, err)
	}
	if ctx.Err() != nil {
		t.Fatalf("Consume(%+v) got %d events before the deadline", o, len(ids))
	}
	return ids
}

func eventIDs(events []eventstore.Event) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.ID.String()
	}
	return out
}

// A durable consumer that was offline resumes after the last event it handled.
func TestConsumeDurableResumes(t *testing.T) {
	t.Parallel()
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			s := b.open(t)
			srv := startServer(t, t.TempDir(), 0)
			r, _ := runRelay(t, relayOptions(s, newClient(t, srv.ClientURL(), nil)))
			events := appendUsers(t, s, 10)
			waitFor(t, 10*time.Second, "the relay", func() bool { return r.Status().Position == events[9].GlobalPosition })

			got := consume(t, srv.ClientURL(), eventbus.ConsumeOptions{Durable: "mailer", FromStart: true, Max: 4})
			if want := eventIDs(events[:4]); strings.Join(got, ",") != strings.Join(want, ",") {
				t.Fatalf("first run got %v, want %v", got, want)
			}
			// While the consumer is away, more events arrive.
			events = append(events, appendUsers(t, s, 10)...)
			waitFor(t, 10*time.Second, "the relay", func() bool { return r.Status().Position == events[19].GlobalPosition })

			got = consume(t, srv.ClientURL(), eventbus.ConsumeOptions{Durable: "mailer", Max: 16})
			if want := eventIDs(events[4:]); strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("resumed run got %v, want %v", got, want)
			}
		})
	}
}

func TestConsumeFilters(t *testing.T) {
	t.Parallel()
	s := openSQLite(t)
	srv := startServer(t, t.TempDir(), 0)
	r, _ := runRelay(t, relayOptions(s, newClient(t, srv.ClientURL(), nil)))
	users := appendUsers(t, s, 3)
	uid := strings.TrimPrefix(users[1].StreamID, "user-")
	changed, err := s.Append(context.Background(), eventstore.Append{
		Stream: users[1].StreamID, Expected: eventstore.Exactly(1),
		Events: []eventstore.NewEvent{{Type: "EmailVerified", SchemaVersion: 1, Data: json.RawMessage(`{"email":"x@example.com"}`)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the relay", func() bool { return r.Status().Position == changed.LastPosition })

	if got := consume(t, srv.ClientURL(), eventbus.ConsumeOptions{User: uid, FromStart: true, Max: 2}); len(got) != 2 || got[0] != users[1].ID.String() {
		t.Errorf("user %s: got %v, want their two events", uid, got)
	}
	if got := consume(t, srv.ClientURL(), eventbus.ConsumeOptions{Type: "UserRegistered", FromStart: true, Max: 3}); strings.Join(got, ",") != strings.Join(eventIDs(users), ",") {
		t.Errorf("UserRegistered: got %v, want %v", got, eventIDs(users))
	}

	// Without FromStart only new events come.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	got := make(chan string, 1)
	go func() {
		eventbus.Consume(ctx, connect(t, srv.ClientURL()), eventbus.ConsumeOptions{Max: 1}, func(m eventbus.Message) error {
			var ce eventbus.CloudEvent
			json.Unmarshal(m.Data, &ce)
			got <- ce.ID
			return nil
		})
	}()
	// The consumer may take a while to exist on a loaded machine: new events are appended until
	// one arrives, and it must be one of them, never an event from before.
	fresh := map[string]bool{}
	tick := time.NewTicker(300 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case id := <-got:
			if !fresh[id] {
				t.Errorf("new events only: got %s, which was stored before the consumer started", id)
			}
			return
		case <-tick.C:
			fresh[appendUser(t, s).ID.String()] = true
		case <-ctx.Done():
			t.Fatal("the consumer received none of the new events in 20s")
		}
	}
}

func TestConsumeRefusesBadOptions(t *testing.T) {
	t.Parallel()
	s := openSQLite(t)
	srv := startServer(t, t.TempDir(), 0)
	r, _ := runRelay(t, relayOptions(s, newClient(t, srv.ClientURL(), nil)))
	e := appendUser(t, s)
	waitFor(t, 10*time.Second, "the relay", func() bool { return r.Status().Position == e.GlobalPosition })
	nc := connect(t, srv.ClientURL())
	for _, o := range []eventbus.ConsumeOptions{{Type: "User.Registered"}, {User: "*"}, {Durable: "a b"}, {Max: -1}} {
		if err := eventbus.Consume(context.Background(), nc, o, nil); !errors.Is(err, eventbus.ErrInvalidConsumer) {
			t.Errorf("Consume(%+v) = %v, want ErrInvalidConsumer", o, err)
		}
	}
	consume(t, srv.ClientURL(), eventbus.ConsumeOptions{Durable: "crm", Type: "UserRegistered", FromStart: true, Max: 1})
	err := eventbus.Consume(context.Background(), nc, eventbus.ConsumeOptions{Durable: "crm", Type: "EmailVerified"}, nil)
	if !errors.Is(err, eventbus.ErrInvalidConsumer) || !strings.Contains(err.Error(), "idlog.events.UserRegistered.*") {
		t.Errorf("Consume with another filter under the same durable name = %v, want ErrInvalidConsumer naming its filter", err)
	}
}
