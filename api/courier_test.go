package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/idlog/idlog/courier"
	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/eventstore"
)

// GET /api/v2/admin/courier/queue lists the outbox to those who read the log, without the
// recipient or the code, and refuses everyone else.
func TestAdminCourierQueue(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, s *server) {
		const to, code = "secret-recipient@example.com", "QUEUED-CODE-4242"
		msg, err := courier.Outbox{Sealer: s.sealer}.Message("password_reset", courier.ChannelEmail, "ID00000000AB",
			courier.Payload{To: to, Token: code}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		ev := eventstore.NewEvent{Type: "TestMessageCaused", SchemaVersion: 1, Data: []byte(`{}`)}
		if _, err := s.store.Append(context.Background(), eventstore.Append{Stream: "test-outbox", Expected: eventstore.NoStream,
			Events: []eventstore.NewEvent{ev}, Outbox: []eventstore.OutboxMessage{msg}}); err != nil {
			t.Fatal(err)
		}
		_, admin := s.staff(t, "courier-admin", domain.RoleAdmin)
		got := s.get("/api/v2/admin/courier/queue", admin).want(t, http.StatusOK)
		if strings.Contains(got.body, to) || strings.Contains(got.body, code) {
			t.Fatalf("the queue shows a recipient or a code: %s", got.body)
		}
		var q []courier.Queued
		if err := json.Unmarshal([]byte(got.body), &q); err != nil {
			t.Fatal(err)
		}
		if len(q) != 1 || q[0].ID != msg.ID.String() || q[0].Kind != "password_reset" || q[0].UID != "ID00000000AB" || q[0].Dead {
			t.Fatalf("queue: %+v", q)
		}
		_, member := s.staff(t, "courier-member", domain.RoleMember)
		s.get("/api/v2/admin/courier/queue", member).want(t, http.StatusForbidden)
		s.get("/api/v2/admin/courier/queue", "").want(t, http.StatusUnauthorized)
	})
}
