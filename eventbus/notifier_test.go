package eventbus_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/idlog/idlog/eventbus"
)

func TestNotifierPublishesToItsOwnShortLivedStream(t *testing.T) {
	t.Parallel()
	srv := startServer(t, t.TempDir(), 0)
	n, err := eventbus.NewNotifier(eventbus.NotifierOptions{Client: newClient(t, srv.ClientURL(), nil)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	js, err := jetstream.New(connect(t, srv.ClientURL()))
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Notify(ctx, "email_confirmation", "alice@example.com", map[string]string{"code": "493021"}); err != nil {
		t.Fatal(err)
	}
	if err := n.Notify(ctx, "password_reset", "bob@example.com", map[string]string{"token": "tok-123"}); err != nil {
		t.Fatal(err)
	}

	st, err := js.Stream(ctx, eventbus.NotificationsStream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	if cfg.Storage != jetstream.FileStorage || cfg.MaxAge != time.Hour || len(cfg.Subjects) != 1 || cfg.Subjects[0] != "idlog.notifications.>" {
		t.Errorf("stream config %+v, want file storage, 1h max age, idlog.notifications.>", cfg)
	}
	m, err := st.GetLastMsgForSubject(ctx, "idlog.notifications.email_confirmation")
	if err != nil {
		t.Fatal(err)
	}
	var ce struct {
		SpecVersion, ID, Source, Type string
		Data                          eventbus.Notification
	}
	if err := json.Unmarshal(m.Data, &ce); err != nil {
		t.Fatal(err)
	}
	if ce.SpecVersion != "1.0" || ce.ID == "" || ce.Type != "email_confirmation" || ce.Data.To != "alice@example.com" || ce.Data.Payload["code"] != "493021" {
		t.Errorf("notification %s, want a CloudEvent for alice with the code", m.Data)
	}
	if m.Header.Get("Nats-Msg-Id") != ce.ID {
		t.Errorf("Nats-Msg-Id %q, want the notification id %s", m.Header.Get("Nats-Msg-Id"), ce.ID)
	}
	// Secrets never reach the event log.
	if _, err := js.Stream(ctx, eventbus.EventsStream); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("IDLOG_EVENTS: %v, want no such stream", err)
	}
}

func TestNotifyRefusesBadInput(t *testing.T) {
	t.Parallel()
	srv := startServer(t, t.TempDir(), 0)
	n, err := eventbus.NewNotifier(eventbus.NotifierOptions{Client: newClient(t, srv.ClientURL(), nil)})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ kind, to string }{
		{"", "a@example.com"}, {"email.code", "a@example.com"}, {"email_*", "a@example.com"},
		{strings.Repeat("k", 65), "a@example.com"}, {"email_code", ""},
	} {
		if err := n.Notify(context.Background(), tt.kind, tt.to, nil); !errors.Is(err, eventbus.ErrInvalidNotification) {
			t.Errorf("Notify(%q, %q) = %v, want ErrInvalidNotification", tt.kind, tt.to, err)
		}
	}
}

// With NATS unreachable Notify fails at once, and its error holds no secret.
func TestNotifyWithoutNATS(t *testing.T) {
	t.Parallel()
	n, err := eventbus.NewNotifier(eventbus.NotifierOptions{Client: newClient(t, "nats://u:pw-123@127.0.0.1:1", nil)})
	if err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	err = n.Notify(context.Background(), "password_reset", "bob@example.com", map[string]string{"token": "tok-secret"})
	if !errors.Is(err, eventbus.ErrNotConnected) {
		t.Errorf("Notify = %v, want ErrNotConnected", err)
	}
	if took := time.Since(begin); took > time.Second {
		t.Errorf("Notify took %v, want it to fail at once", took)
	}
	if strings.Contains(err.Error(), "tok-secret") || strings.Contains(err.Error(), "pw-123") {
		t.Errorf("Notify error shows a secret: %v", err)
	}
}
