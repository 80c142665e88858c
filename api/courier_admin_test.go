package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/idlog/idlog/courier"
	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/migrations"
)

// queueMessages queues n password reset messages, each with its event, oldest first.
func queueMessages(t *testing.T, s *server, n int) []string {
	t.Helper()
	var ids []string
	for i := range n {
		msg, err := courier.Outbox{Sealer: s.sealer}.Message("password_reset", courier.ChannelEmail, "ID00000000AB",
			courier.Payload{To: "someone@example.com", Token: "CODE"}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		ev := eventstore.NewEvent{Type: "TestMessageCaused", SchemaVersion: 1, Data: []byte(`{}`)}
		if _, err := s.store.Append(context.Background(), eventstore.Append{Stream: "test-outbox-" + msg.ID.String(), Expected: eventstore.NoStream,
			Events: []eventstore.NewEvent{ev}, Outbox: []eventstore.OutboxMessage{msg}}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, msg.ID.String())
		if i < n-1 {
			time.Sleep(2 * time.Millisecond) // created_at is in milliseconds: keep the order
		}
	}
	return ids
}

// The courier's queue is listed a page at a time, with Barong's paging headers; a dead message
// is retried now with a fresh round of attempts, by those who run the system only.
func TestAdminCourierQueuePagesAndRetry(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, s *server) {
		const queue = "/api/v2/admin/courier/queue"
		ids := queueMessages(t, s, 3)
		_, admin := s.staff(t, "ops", domain.RoleAdmin)
		_, auditor := s.staff(t, "auditor", domain.RoleAuditor)

		list := func(path, token string) ([]courier.Queued, response) {
			t.Helper()
			r := s.get(path, token).want(t, http.StatusOK)
			var q []courier.Queued
			if err := json.Unmarshal([]byte(r.body), &q); err != nil {
				t.Fatal(err)
			}
			return q, r
		}
		first, r := list(queue+"?limit=2", auditor)
		if len(first) != 2 || first[0].ID != ids[0] || first[1].ID != ids[1] ||
			r.header.Get("Total") != "3" || r.header.Get("Page") != "1" || r.header.Get("Per-Page") != "2" {
			t.Fatalf("page 1: %+v, headers %v", first, r.header)
		}
		second, r := list(queue+"?limit=2&page=2", auditor)
		if len(second) != 1 || second[0].ID != ids[2] || r.header.Get("Page") != "2" {
			t.Fatalf("page 2: %+v, headers %v", second, r.header)
		}
		if all, r := list(queue, admin); len(all) != 3 || r.header.Get("Per-Page") != "100" {
			t.Fatalf("default page: %d messages, Per-Page %q", len(all), r.header.Get("Per-Page"))
		}
		s.get(queue+"?page=0&limit=101", admin).want(t, http.StatusUnprocessableEntity, "admin.courier.invalid_page", "admin.courier.invalid_limit")

		// The second message gave up; the third is past its expiry.
		future := time.Now().Add(time.Hour).UnixMilli()
		dead := true
		var deadArg any = dead
		if s.dialect == migrations.SQLite {
			deadArg = 1
		}
		if _, err := s.db.ExecContext(context.Background(), s.db.Rebind(`UPDATE outbox SET dead = ?, attempts = 8, next_attempt_at = ?, last_error = 'smtp: 550' WHERE id = ?`),
			deadArg, future, ids[1]); err != nil {
			t.Fatal(err)
		}
		if _, err := s.db.ExecContext(context.Background(), s.db.Rebind(`UPDATE outbox SET expires_at = ? WHERE id = ?`),
			time.Now().Add(-time.Minute).UnixMilli(), ids[2]); err != nil {
			t.Fatal(err)
		}
		retry := func(id string) string { return queue + "/" + id + "/retry" }
		s.post(retry(ids[1]), obj{}, auditor).want(t, http.StatusForbidden)
		s.post(retry(ids[1]), obj{}, "").want(t, http.StatusUnauthorized)
		before := time.Now()
		s.post(retry(ids[1]), obj{}, admin).want(t, http.StatusNoContent)
		q, _ := list(queue, admin)
		var got courier.Queued
		for _, m := range q {
			if m.ID == ids[1] {
				got = m
			}
		}
		if got.Dead || got.Attempts != 0 || got.NextAttemptAt.After(time.Now()) || got.NextAttemptAt.Before(before.Add(-time.Second)) {
			t.Fatalf("retried message %+v, want live, no attempts, due now", got)
		}
		s.post(retry(ids[2]), obj{}, admin).want(t, http.StatusUnprocessableEntity, "admin.courier.expired")
		s.post(retry("0190c3b2-1111-7000-8000-000000000000"), obj{}, admin).want(t, http.StatusNotFound, "admin.courier.doesnt_exist")
		s.post(retry("not-an-id"), obj{}, admin).want(t, http.StatusNotFound, "admin.courier.doesnt_exist")
	})
}
