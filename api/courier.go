package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/gorilla/mux"

	"github.com/idlog/idlog/commands"
	"github.com/idlog/idlog/courier"
	"github.com/idlog/idlog/projections"
)

// OutboxLister lists the messages waiting for delivery a page at a time, and retries one;
// courier.Lister is one.
type OutboxLister interface {
	Page(ctx context.Context, page, limit int) ([]courier.Queued, int, error)
	// Retry makes a message due now with a fresh round of attempts; errors courier.ErrNotQueued
	// and courier.ErrExpired.
	Retry(ctx context.Context, id string) error
}

// OutboxReaders are the roles that may list the courier's queue: those that read the event log,
// since the queue tells as much (kinds of message, user ids), and no more.
var OutboxReaders = commands.RolesWith(commands.AbilityReadEvents)

// OutboxRetriers are the roles that may retry a message: those that run the system (they read
// the projections' status too). An auditor reads the queue but changes nothing.
var OutboxRetriers = commands.RolesWith(commands.AbilityReadProjections)

const scopeAdminCourier = "admin.courier"

// AdminOutboxHandler serves GET /api/v2/admin/courier/queue?page&limit: a page of the messages
// waiting for delivery (100 at most, Barong's Total, Page and Per-Page headers), oldest first,
// with their attempts, next attempt, last error and dead flag, and never their recipient or
// content (sealed in the outbox). It needs the bearer middleware and
// RequireRole(OutboxReaders...) in front.
func AdminOutboxHandler(l OutboxLister, log *slog.Logger) http.Handler {
	if l == nil {
		panic("api: AdminOutboxHandler needs the outbox")
	}
	log = orDiscard(log)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		page, limit, bad := readPage(r.URL.Query().Get("page"), r.URL.Query().Get("limit"), scopeAdminCourier)
		if limit > projections.MaxLimit {
			bad = append(bad, scopeAdminCourier+".invalid_limit")
		}
		if len(bad) > 0 {
			WriteError(w, http.StatusUnprocessableEntity, bad...)
			return
		}
		if page == 0 {
			page = 1
		}
		if limit == 0 {
			limit = projections.DefaultLimit
		}
		q, total, err := l.Page(r.Context(), page, limit)
		if err != nil {
			writeViewError(w, r, log, scopeAdminCourier, err)
			return
		}
		if q == nil {
			q = []courier.Queued{}
		}
		w.Header().Set("Cache-Control", "no-store")
		setPageHeaders(w, total, page, limit)
		WriteJSON(w, http.StatusOK, q)
	})
}

// AdminOutboxRetryHandler serves POST /api/v2/admin/courier/queue/{id}/retry: the message is due
// now, with a fresh round of attempts (a dead one lives again): 204.
// 404 admin.courier.doesnt_exist when no such message is queued, 422 admin.courier.expired when
// it is past its expiry. It needs the bearer middleware and RequireRole(OutboxRetriers...).
func AdminOutboxRetryHandler(l OutboxLister, log *slog.Logger) http.Handler {
	if l == nil {
		panic("api: AdminOutboxRetryHandler needs the outbox")
	}
	log = orDiscard(log)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := mux.Vars(r)["id"]
		switch err := l.Retry(r.Context(), id); {
		case errors.Is(err, courier.ErrNotQueued):
			WriteError(w, http.StatusNotFound, scopeAdminCourier+".doesnt_exist")
			return
		case errors.Is(err, courier.ErrExpired):
			WriteError(w, http.StatusUnprocessableEntity, scopeAdminCourier+".expired")
			return
		case err != nil:
			writeViewError(w, r, log, scopeAdminCourier, err)
			return
		}
		log.InfoContext(r.Context(), "courier message retried", "id", id)
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusNoContent)
	})
}
