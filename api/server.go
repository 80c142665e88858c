// Package api is idlog's HTTP interface: the router, the health and readiness probes, Prometheus
// metrics, request ids and access logs, Barong-style JSON errors, and the account routes (sign-up,
// sign-in, the signed-in user, two-factor authentication, the JWKS) with their bearer middleware
// (Authenticator, CallerFrom, RequireRole), and the OpenAPI document that describes them all
// (openapi.yaml, served at /api/v2/openapi.json). Errors of the lower layers become statuses and codes in
// one place, errors_map.go. The binary builds the handler with NewServer and owns the listener and
// its lifecycle.
package api

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/idlog/idlog/auth"
)

// Check is a named readiness check. /readyz answers 200 only when every check returns nil.
type Check struct {
	Name string
	// Check reports whether the dependency answers. It must return once ctx is done.
	Check func(ctx context.Context) error
	// Optional: a failure degrades the service but does not make it unready, because requests
	// are still served well without it (the NATS relay: events wait in the store). /readyz then
	// answers 200 and names the check under "degraded".
	Optional bool
	// Details, when set, is shown under "details" in /readyz, failing or not (lag figures, say).
	Details func() any
}

// Options are what the server needs. The zero value serves the probes and metrics alone.
type Options struct {
	// Logger receives access logs and failures. Nil discards them.
	Logger *slog.Logger
	// Metrics is where the server registers its collectors and what /metrics serves, so other
	// parts of the binary can add theirs. Nil gives the server a registry of its own.
	Metrics *prometheus.Registry
	// Ready are the readiness checks behind /readyz.
	Ready []Check
	// Version is what GET /api/v2/identity/version answers.
	Version string
	// Accounts, when set, serves the account routes (sign-up, sign-in, the signed-in user, 2FA)
	// and the JWKS. Nil serves none of them.
	Accounts *Accounts
	// EventKeys, when set, is served at /.well-known/events-jwks.json: the public keys that
	// verify the signature of every event idlog publishes to NATS.
	EventKeys *auth.JWKS
	// Views, with Accounts, serves the read-model routes (the activity log, the projections'
	// status) behind the same bearer middleware. Without Accounts nobody can sign in to use them.
	Views *Views
	// CORSOrigins are the origins (scheme://host[:port]) browser apps may call from, with
	// credentials (CheckOrigin says which are valid); empty allows same-origin calls only.
	CORSOrigins []string
	// RequestTimeout bounds how long a request may take before its answer starts; past it the
	// answer is 503 server.unavailable. 0 means DefaultRequestTimeout.
	RequestTimeout time.Duration
}

// NewServer returns idlog's HTTP handler. It registers its metrics in o.Metrics, so it is called
// once per registry. A check without a name or function is a wiring mistake and panics.
func NewServer(o Options) http.Handler {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = DefaultRequestTimeout
	}
	if o.Metrics == nil {
		o.Metrics = prometheus.NewRegistry()
	}
	for _, c := range o.Ready {
		if c.Name == "" || c.Check == nil {
			panic("api: a readiness check needs a name and a function")
		}
	}

	r := mux.NewRouter()
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		WriteError(w, http.StatusNotFound, "route.not_found")
	})
	r.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		WriteError(w, http.StatusMethodNotAllowed, "route.method_not_allowed")
	})
	r.Use(recordRoute)

	r.Handle("/healthz", http.HandlerFunc(healthz)).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/api/v2/openapi.json", http.HandlerFunc(serveOpenAPI)).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/readyz", readyz(o.Logger, o.Ready)).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/metrics", promhttp.HandlerFor(o.Metrics, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(o.Logger.Handler(), slog.LevelError),
	})).Methods(http.MethodGet, http.MethodHead)
	if o.EventKeys != nil {
		keys := *o.EventKeys
		r.Handle("/.well-known/events-jwks.json", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Cache-Control", "public, max-age=300")
			WriteJSON(w, http.StatusOK, keys)
		})).Methods(http.MethodGet, http.MethodHead)
	}
	if o.Accounts != nil {
		accounts := newAccountRoutes(*o.Accounts, o.Logger, o.Version, o.Metrics)
		accounts.origins = o.CORSOrigins
		accounts.register(r)
		if o.Views != nil {
			o.Views.register(r, accounts.authn.Middleware, o.Logger)
		}
	}

	// Outermost first: every request gets an id, then is timed and logged, gets its CORS headers
	// (a preflight is answered there), gets its deadline,
	// and a panic inside is answered with a 500 that the timing and the log still see.
	return &handler{router: r, Handler: withRequestID(instrument(o.Logger, newHTTPMetrics(o.Metrics),
		withCORS(o.CORSOrigins, withDeadline(o.Logger, o.RequestTimeout, recoverPanics(o.Logger, r)))))}
}
