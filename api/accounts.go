package api

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/idlog/idlog/auth"
	"github.com/idlog/idlog/commands"
)

// DefaultReadYourWrites bounds how long an answer waits for the read models to show its change.
const DefaultReadYourWrites = 2 * time.Second

// AccessTokens verifies access tokens and publishes their public keys; *auth.Signer is one.
type AccessTokens interface {
	TokenVerifier
	JWKS() auth.JWKS
	TTL() time.Duration
}

// Accounts is what the account routes need: /api/v2/identity, /api/v2/resource,
// /api/v2/public/users and /.well-known/jwks.json.
type Accounts struct {
	App    commands.Application
	Users  Users
	Tokens AccessTokens
	// Projections, when set, is waited for after a command, up to ReadYourWrites (0 means
	// DefaultReadYourWrites), so that a client reading right after its change sees it. A wait that
	// times out still answers success: the change is stored.
	Projections    PositionWaiter
	ReadYourWrites time.Duration
	// Idempotency says where the first answers to requests with an Idempotency-Key are kept.
	// Nil keeps them in this process's memory: a restart or another replica forgets them.
	Idempotency *Idempotency
	// Labels, when set, serves the label routes (/api/v2/resource/labels, /api/v2/admin/users/labels,
	// /api/v2/admin/levels) and adds the labels to GET /users/me.
	Labels Labels
	// Wallets, when set, serves the wallet routes (/api/v2/resource/wallet, /api/v2/admin/wallets)
	// and adds the balances to GET /users/me.
	Wallets Wallets
	// Profiles, when set, answers GET /users/me with one query (the user, their labels and
	// balances) instead of one per read model. When its profiles carry the version of the user's
	// stream (projections.ProfileView.WithStreamVersions: for an event store in the read models'
	// database), the session is checked with that version, with no query of its own.
	Profiles Profiles
	// UserProfiles, when set, serves the profile routes (/api/v2/resource/profiles,
	// /api/v2/admin/profiles; see profiles.go) and adds the profile and settings to GET /users/me
	// and GET /admin/users/{uid}.
	UserProfiles ProfileRecords
	// KYC, when set, serves the phone, document and data storage routes (kyc.go) and adds them to
	// GET /api/v2/admin/users/{uid} (Barong's UserWithKYC).
	KYC *KYC
	// Admin, when set, serves the admin user routes (/api/v2/admin/users..., /api/v2/admin/metrics);
	// see admin_users.go.
	Admin *AdminUsers
	// TrustForwardedFor takes the client address from the last X-Forwarded-For entry, as set by
	// a proxy in front. Without a proxy it must stay off: clients could pick their address and
	// dodge the sign-in throttle.
	TrustForwardedFor bool
	// SessionList, when set, serves GET and DELETE /api/v2/resource/sessions and adds the open
	// sessions to GET /api/v2/admin/users/{uid}.
	SessionList SessionList
	// SessionCookies makes every sign-in a cookie session unless it says cookie=false; without it
	// a sign-in asks with cookie=true.
	SessionCookies bool
	// SecureCookies marks the session cookies Secure on every request (the public URL is https,
	// behind a proxy that ends TLS); without it they are Secure on requests that came over TLS.
	SecureCookies bool
	// APIKeys, when set, serves the API key routes (apikeys.go); APIKeyAuth, when set, lets a
	// request signed with an API key through the bearer middleware.
	APIKeys    APIKeyRecords
	APIKeyAuth APIKeyVerifier
	// Gatekeeper, when set, serves the authz endpoint for gateways, the permissions, restrictions
	// and whitelinks (gatekeeper.go).
	Gatekeeper *Gatekeeper
	// Introspection: the resource servers that may introspect tokens with HTTP Basic
	// (introspect_auth.go); nil: only API keys of users who may read users.
	Introspection *IntrospectionClients
}

// accountRoutes serves the account routes.
type accountRoutes struct {
	Accounts
	log     *slog.Logger
	version string
	authn   *Authenticator
	idem    *idempotentRequests
	lagging prometheus.Counter
	// origins are the CORS allowlist (Options.CORSOrigins): a cookie refresh from an origin other
	// than them and this host is refused.
	origins []string
	// upstream signs the authz endpoint's tokens, reusing them a while (gatekeeper.go).
	upstream *upstreamCache
}

func newAccountRoutes(a Accounts, log *slog.Logger, version string, reg prometheus.Registerer) *accountRoutes {
	if a.Users == nil || a.Tokens == nil {
		panic("api: Accounts needs Users and Tokens")
	}
	if a.ReadYourWrites <= 0 {
		a.ReadYourWrites = DefaultReadYourWrites
	}
	lagging := prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "idlog", Subsystem: "http", Name: "read_your_writes_timeouts_total",
		Help: "Answers sent before the read models showed the change (the wait timed out).",
	})
	reg.MustRegister(lagging)
	authn := NewAuthenticator(a.Tokens, a.App.Sessions, log)
	routes := &accountRoutes{
		Accounts: a, log: log, version: version, authn: authn,
		idem:    newIdempotentRequests(a.Idempotency, authn, log),
		lagging: lagging,
	}
	if a.APIKeyAuth != nil {
		authn.WithAPIKeys(a.APIKeyAuth, routes.clientIP)
	}
	return routes
}

// register adds the account routes to r, and the idempotency decorator to every route of r.
func (a *accountRoutes) register(r *mux.Router) {
	r.Use(a.idem.middleware)
	get, post, put, del := []string{http.MethodGet, http.MethodHead}, http.MethodPost, http.MethodPut, http.MethodDelete
	h := func(f http.HandlerFunc) http.Handler { return f }
	signedIn := a.authn.Middleware

	r.Handle("/.well-known/jwks.json", h(a.jwks)).Methods(get...)
	r.Handle("/api/v2/public/users/{uid}", h(a.publicUser)).Methods(get...)

	id := r.PathPrefix("/api/v2/identity").Subrouter()
	id.Handle("/ping", h(a.ping)).Methods(get...)
	id.Handle("/time", h(a.time)).Methods(get...)
	id.Handle("/version", h(a.versionInfo)).Methods(get...)
	id.Handle("/configs", h(a.configs)).Methods(get...)
	id.Handle("/password/validate", h(a.validatePassword)).Methods(post)
	id.Handle("/users", h(a.registerUser)).Methods(post)
	id.Handle("/users/email/generate_code", h(a.requestEmailCode)).Methods(post)
	id.Handle("/users/email/confirm_code", h(a.confirmEmail)).Methods(post)
	id.Handle("/users/password/generate_code", h(a.requestResetCode)).Methods(post)
	id.Handle("/users/password/confirm_code", h(a.resetPassword)).Methods(post)
	id.Handle("/sessions", h(a.signIn)).Methods(post)
	id.Handle("/sessions", signedIn(h(a.signOut))).Methods(del)
	// Ignores Idempotency-Key (unkeyedRoutes): each use of a refresh token is one rotation.
	id.Handle("/sessions/refresh", h(a.refresh)).Methods(post)
	id.Handle("/introspect", h(a.introspect)).Methods(post) // introspect.go

	// GET /users/me checks the session with the stream version its profile query reads, in one
	// statement; registered before the resource routes, whose middleware would check it first.
	if p, ok := a.Profiles.(versionedProfiles); ok && p.ReadsStreamVersions() {
		r.Handle("/api/v2/resource/users/me", h(a.meInOneRead)).Methods(get...)
	}
	res := r.PathPrefix("/api/v2/resource").Subrouter()
	res.Use(signedIn)
	res.Handle("/users/me", h(a.me)).Methods(get...)
	res.Handle("/users/me", h(a.updateData)).Methods(put)
	res.Handle("/users/me", h(a.deleteAccount)).Methods(del)
	res.Handle("/users/password", h(a.changePassword)).Methods(put)
	res.Handle("/users/email", h(a.changeEmail)).Methods(put)
	res.Handle("/users/username", h(a.changeUsername)).Methods(put)
	// Ignores Idempotency-Key (unkeyedRoutes): a retry makes another secret, which replaces the first.
	res.Handle("/otp/generate_qrcode", h(a.generateOTP)).Methods(post)
	res.Handle("/otp/enable", h(a.enableOTP)).Methods(post)
	res.Handle("/otp/verify", h(a.verifyOTP)).Methods(post)
	res.Handle("/otp/disable", h(a.disableOTP)).Methods(post)
	if a.SessionList != nil {
		res.Handle("/sessions", h(a.mySessions)).Methods(get...)
		res.Handle("/sessions/{id}", h(a.endMySession)).Methods(del)
	}
	if a.Labels != nil {
		a.registerLabels(r, res)
	}
	if a.Wallets != nil {
		a.registerWallet(r, res)
	}
	if a.UserProfiles != nil {
		a.registerProfiles(r, res)
	}
	if a.Admin != nil {
		a.registerAdminUsers(r)
	}
	if a.KYC != nil {
		a.registerKYC(r, res)
	}
	if a.APIKeys != nil {
		a.registerAPIKeys(r, res)
	}
	if a.Gatekeeper != nil {
		a.registerGatekeeper(r)
	}
}

// meta is the command metadata of a request: the caller, their address and browser, the request
// id and the idempotency key (the one the idempotency decorator derived, bound to the request).
func (a *accountRoutes) meta(r *http.Request) commands.Meta {
	m := commands.Meta{
		IP: a.clientIP(r), UserAgent: r.UserAgent(), RequestID: RequestID(r.Context()),
		IdempotencyKey: commandKey(r.Context()),
	}
	if c, ok := CallerFrom(r.Context()); ok {
		m.ActorUID, m.ActorRole = c.UID, c.Role
	}
	return m
}

func (a *accountRoutes) clientIP(r *http.Request) string {
	if a.TrustForwardedFor {
		if xff := r.Header.Values("X-Forwarded-For"); len(xff) > 0 {
			parts := strings.Split(xff[len(xff)-1], ",")
			if ip := net.ParseIP(strings.TrimSpace(parts[len(parts)-1])); ip != nil {
				return ip.String()
			}
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// caughtUp waits, within the bound, for the read models to reach a command's position.
func (a *accountRoutes) caughtUp(ctx context.Context, position uint64) {
	if position == 0 || a.Projections == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, a.ReadYourWrites)
	defer cancel()
	if err := a.Projections.WaitFor(ctx, position); err != nil {
		a.lagging.Inc()
		a.log.LogAttrs(ctx, slog.LevelWarn, "answering before the read models caught up",
			slog.String("request_id", RequestID(ctx)), slog.Uint64("position", position), slog.Any("error", err))
	}
}

// view is the user as the read model shows them, or as the command left them if the read model
// has not caught up.
func (a *accountRoutes) view(ctx context.Context, acct commands.Account) UserView {
	v, err := a.Users.ByUID(ctx, acct.UID)
	if err == nil {
		return v
	}
	if !errors.Is(err, ErrUserNotFound) {
		a.log.LogAttrs(ctx, slog.LevelError, "read the users read model", slog.String("request_id", RequestID(ctx)), slog.Any("error", err))
	}
	return viewOfAccount(acct)
}

// params reads the body, answering 400 or 413 itself when it cannot.
func (a *accountRoutes) params(w http.ResponseWriter, r *http.Request) (params, bool) {
	p, err := readParams(r)
	if err != nil {
		status, code := errorStatus("", err)
		WriteError(w, status, code)
		return nil, false
	}
	return p, true
}

// require answers 422 <scope>.missing_<field> for every empty field, and reports whether all
// were given.
func require(w http.ResponseWriter, p params, scope string, fields ...string) bool {
	var missing []string
	for _, f := range fields {
		if p.str(f) == "" {
			missing = append(missing, scope+".missing_"+f)
		}
	}
	if missing != nil {
		WriteError(w, http.StatusUnprocessableEntity, missing...)
		return false
	}
	return true
}

// fail answers a command's error; see errors_map.go.
func (a *accountRoutes) fail(w http.ResponseWriter, r *http.Request, scope string, err error) {
	writeCommandError(w, r, a.log, scope, err)
}

// noStore keeps answers that carry tokens or secrets out of caches.
func noStore(w http.ResponseWriter) { w.Header().Set("Cache-Control", "no-store") }
