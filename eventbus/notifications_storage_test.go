package eventbus_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/idlog/idlog/eventbus"
)

// notificationTokens are the tokens of the notifications IDLOG_NOTIFICATIONS holds, in order.
func notificationTokens(t *testing.T, nc *nats.Conn) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	js, _ := jetstream.New(nc)
	st, err := js.Stream(ctx, eventbus.NotificationsStream)
	if err != nil {
		t.Fatal(err)
	}
	if s := st.CachedInfo().Config.Storage; s != jetstream.FileStorage {
		t.Errorf("IDLOG_NOTIFICATIONS has %v storage, want file", s)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		var ce struct{ Data eventbus.Notification }
		if err := json.Unmarshal(m.Data, &ce); err != nil {
			t.Fatal(err)
		}
		out = append(out, ce.Data.Payload["token"])
	}
	return out
}

func sameTokens(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// An embedded NATS server restarted on its store directory still holds every unread code.
func TestNotificationsSurviveANATSRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	srv := startServer(t, dir, 0)
	n, err := eventbus.NewNotifier(eventbus.NotifierOptions{Client: newClient(t, srv.ClientURL(), nil)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tok := range []string{"code-1", "code-2"} {
		if err := n.Notify(ctx, "password_reset", "ann@example.com", map[string]string{"token": tok}); err != nil {
			t.Fatal(err)
		}
	}
	srv.Shutdown()

	again := startServer(t, dir, 0)
	if got := notificationTokens(t, connect(t, again.ClientURL())); !sameTokens(got, []string{"code-1", "code-2"}) {
		t.Fatalf("after a restart IDLOG_NOTIFICATIONS holds %q, want code-1 and code-2", got)
	}
}

// A memory-backed IDLOG_NOTIFICATIONS made by an older idlog is moved to file storage at the
// first notification, its unread messages kept in order with their ids; they then survive a
// restart.
func TestMemoryNotificationsStreamMovesToFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	srv := startServer(t, dir, 0)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	js, _ := jetstream.New(connect(t, srv.ClientURL()))
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: eventbus.NotificationsStream, Subjects: []string{eventbus.NotificationsSubjects},
		Storage: jetstream.MemoryStorage, MaxAge: time.Hour, Duplicates: 2 * time.Minute,
	}); err != nil {
		t.Fatal(err)
	}
	for i, tok := range []string{"old-1", "old-2"} {
		body, _ := json.Marshal(map[string]any{"data": eventbus.Notification{To: "ann@example.com", Payload: map[string]string{"token": tok}}})
		msg := &nats.Msg{Subject: "idlog.notifications.password_reset", Data: body, Header: nats.Header{"Nats-Msg-Id": {"old-id-" + string(rune('1'+i))}}}
		if _, err := js.PublishMsg(ctx, msg); err != nil {
			t.Fatal(err)
		}
	}

	n, err := eventbus.NewNotifier(eventbus.NotifierOptions{Client: newClient(t, srv.ClientURL(), nil)})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Notify(ctx, "password_reset", "ann@example.com", map[string]string{"token": "new-1"}); err != nil {
		t.Fatal(err)
	}
	want := []string{"old-1", "old-2", "new-1"}
	if got := notificationTokens(t, connect(t, srv.ClientURL())); !sameTokens(got, want) {
		t.Fatalf("IDLOG_NOTIFICATIONS holds %q, want %q", got, want)
	}
	st, _ := js.Stream(ctx, eventbus.NotificationsStream)
	if m, err := st.GetMsg(ctx, 1); err != nil || m.Header.Get("Nats-Msg-Id") != "old-id-1" {
		t.Errorf("first moved message: %v, Nats-Msg-Id %q, want old-id-1", err, m.Header.Get("Nats-Msg-Id"))
	}
	if _, err := js.Stream(ctx, "IDLOG_NOTIFICATIONS_MOVING"); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("the holding stream is still there: %v", err)
	}
	srv.Shutdown()
	again := startServer(t, dir, 0)
	if got := notificationTokens(t, connect(t, again.ClientURL())); !sameTokens(got, want) {
		t.Fatalf("after a restart IDLOG_NOTIFICATIONS holds %q, want %q", got, want)
	}
}

// A move that stopped after the memory stream was deleted resumes from the holding stream.
func TestInterruptedNotificationsMoveResumes(t *testing.T) {
	t.Parallel()
	srv := startServer(t, t.TempDir(), 0)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	js, _ := jetstream.New(connect(t, srv.ClientURL()))
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: "IDLOG_NOTIFICATIONS_MOVING", Subjects: []string{"idlog.notificationsmoving.>"}, Storage: jetstream.FileStorage,
	}); err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]any{"data": eventbus.Notification{To: "ann@example.com", Payload: map[string]string{"token": "held-1"}}})
	if _, err := js.Publish(ctx, "idlog.notificationsmoving.password_reset", body); err != nil {
		t.Fatal(err)
	}
	n, err := eventbus.NewNotifier(eventbus.NotifierOptions{Client: newClient(t, srv.ClientURL(), nil)})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Notify(ctx, "password_reset", "ann@example.com", map[string]string{"token": "new-1"}); err != nil {
		t.Fatal(err)
	}
	if got := notificationTokens(t, connect(t, srv.ClientURL())); !sameTokens(got, []string{"held-1", "new-1"}) {
		t.Fatalf("IDLOG_NOTIFICATIONS holds %q, want held-1, new-1", got)
	}
	st, _ := js.Stream(ctx, eventbus.NotificationsStream)
	if m, _ := st.GetMsg(ctx, 1); m == nil || m.Subject != "idlog.notifications.password_reset" {
		t.Errorf("the held message came back as %+v", m)
	}
}
