package api

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/gorilla/mux"

	"github.com/idlog/idlog/audit"
	"github.com/idlog/idlog/commands"
	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/projections"
)

// ProjectionStatuses reports where every projector stands; *projections.Runtime is one.
type ProjectionStatuses interface {
	Status(ctx context.Context) ([]projections.Status, error)
}

// ProjectionReaders are the roles that may read the projections' status, from the role table.
var ProjectionReaders = commands.RolesWith(commands.AbilityReadProjections)

const scopeAdminProjections = "admin.projections"

// ProjectionsHandler serves GET /api/v2/admin/projections: each projector's checkpoint, lag in
// events and seconds, state and last error, as `idlog projections status` shows them. It needs
// the bearer middleware and RequireRole(ProjectionReaders...) in front.
func ProjectionsHandler(s ProjectionStatuses, log *slog.Logger) http.Handler {
	if s == nil {
		panic("api: ProjectionsHandler needs the projection runtime")
	}
	log = orDiscard(log)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st, err := s.Status(r.Context())
		if err != nil {
			writeViewError(w, r, log, scopeAdminProjections, err)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		WriteJSON(w, http.StatusOK, st)
	})
}

// Views are the read-model routes beside the account routes, behind the same bearer middleware.
type Views struct {
	// Activity serves the caller's activity and, to ActivityReaders, everyone's.
	Activity ActivityLister
	// Projections, when set, serves the projections' status to ProjectionReaders.
	Projections ProjectionStatuses
	// Events, when set, serves the log to EventReaders: GET /api/v2/admin/events and
	// /api/v2/admin/users/{uid}/events.
	Events eventstore.Store
	// Ledger, with Events, serves GET /api/v2/admin/audit/verify, /audit/checkpoint and
	// /audit/proofs/{inclusion,consistency} to EventReaders.
	Ledger *audit.Ledger
	// Outbox, when set, serves GET /api/v2/admin/courier/queue to OutboxReaders, and POST
	// /api/v2/admin/courier/queue/{id}/retry to OutboxRetriers.
	Outbox OutboxLister
}

// register adds the routes of the views that are set to r, each behind signedIn (the bearer
// middleware) and, for the admin routes, the roles allowed.
func (v Views) register(r *mux.Router, signedIn func(http.Handler) http.Handler, log *slog.Logger) {
	get := []string{http.MethodGet, http.MethodHead}
	if v.Activity != nil {
		readers := RequireRole(ActivityReaders...)
		r.Handle("/api/v2/resource/users/activity/{topic}", signedIn(UserActivityHandler(v.Activity, log))).Methods(get...)
		r.Handle("/api/v2/admin/activities", signedIn(readers(AdminActivitiesHandler(v.Activity, false, log)))).Methods(get...)
		r.Handle("/api/v2/admin/activities/admin", signedIn(readers(AdminActivitiesHandler(v.Activity, true, log)))).Methods(get...)
	}
	if v.Outbox != nil {
		r.Handle("/api/v2/admin/courier/queue", signedIn(RequireRole(OutboxReaders...)(AdminOutboxHandler(v.Outbox, log)))).Methods(get...)
		r.Handle("/api/v2/admin/courier/queue/{id}/retry", signedIn(RequireRole(OutboxRetriers...)(AdminOutboxRetryHandler(v.Outbox, log)))).Methods(http.MethodPost)
	}
	if v.Projections != nil {
		r.Handle("/api/v2/admin/projections", signedIn(RequireRole(ProjectionReaders...)(ProjectionsHandler(v.Projections, log)))).Methods(get...)
	}
	if v.Events != nil {
		readers := func(h http.Handler) http.Handler { return signedIn(RequireRole(EventReaders...)(h)) }
		r.Handle("/api/v2/admin/events", readers(AdminEventsHandler(v.Events, log))).Methods(get...)
		r.Handle("/api/v2/admin/users/{uid}/events", readers(AdminUserEventsHandler(v.Events, log))).Methods(get...)
		if v.Ledger != nil {
			r.Handle("/api/v2/admin/audit/verify", readers(AuditVerifyHandler(v.Events, v.Ledger, log))).Methods(get...)
			r.Handle("/api/v2/admin/audit/checkpoint", readers(AuditCheckpointHandler(v.Ledger, log))).Methods(get...)
			r.Handle("/api/v2/admin/audit/proofs/inclusion", readers(AuditInclusionHandler(v.Ledger, log))).Methods(get...)
			r.Handle("/api/v2/admin/audit/proofs/consistency", readers(AuditConsistencyHandler(v.Ledger, log))).Methods(get...)
		}
	}
}
