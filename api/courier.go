package api

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/idlog/idlog/commands"
	"github.com/idlog/idlog/courier"
)

// OutboxLister lists the messages waiting for delivery; courier.Lister is one.
type OutboxLister interface {
	Queue(ctx context.Context, limit int) ([]courier.Queued, error)
}

// OutboxReaders are the roles that may list the courier's queue: those that read the event log,
// since the queue tells as much (kinds of message, user ids), and no more.
var OutboxReaders = commands.RolesWith(commands.AbilityReadEvents)

const scopeAdminCourier = "admin.courier"

// MaxOutboxListed is how many messages GET /api/v2/admin/courier/queue lists at most, oldest first.
const MaxOutboxListed = 1000

// AdminOutboxHandler serves GET /api/v2/admin/courier/queue: the messages waiting for delivery,
// oldest first, with their attempts, next attempt, last error and dead flag, and never their
// recipient or content (sealed in the outbox). It needs the bearer middleware and
// RequireRole(OutboxReaders...) in front.
func AdminOutboxHandler(l OutboxLister, log *slog.Logger) http.Handler {
	if l == nil {
		panic("api: AdminOutboxHandler needs the outbox")
	}
	log = orDiscard(log)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q, err := l.Queue(r.Context(), MaxOutboxListed)
		if err != nil {
			writeViewError(w, r, log, scopeAdminCourier, err)
			return
		}
		if q == nil {
			q = []courier.Queued{}
		}
		w.Header().Set("Cache-Control", "no-store")
		WriteJSON(w, http.StatusOK, q)
	})
}
