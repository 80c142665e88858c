package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/mux"

	"github.com/idlog/idlog/auth"
	"github.com/idlog/idlog/authz"
	"github.com/idlog/idlog/commands"
	"github.com/idlog/idlog/domain"
)

// The gatekeeper: the authz endpoint for forward-auth gateways (/api/v2/auth/{path}: nginx
// auth_request, Traefik forwardAuth, Envoy ext_authz in HTTP mode), Barong's permissions and
// restrictions (/api/v2/admin/permissions, /api/v2/admin/restrictions), whitelinks
// (/api/v2/admin/restrictions/whitelink, /api/v2/identity/users/access).

const (
	scopeAdminPermission  = "admin.permission"
	scopeAdminRestriction = "admin.restriction"
	scopeIdentityAccess   = "identity.access"
)

// GateEngine decides with the access policy; *authz.Engine is one.
type GateEngine interface {
	Rules() *authz.Rules
	Restrict(ip netip.Addr, path string) (authz.Refusal, bool)
	// Refresh reads the policy's latest events, so this replica applies its own change at once.
	Refresh(ctx context.Context) error
}

// UpstreamTokens signs the short-lived token the authz endpoint hands the upstream service; an
// *auth.Signer with its own audience and TTL (and the JWKS key) is one.
type UpstreamTokens interface {
	Sign(c auth.AccessClaims) (string, auth.AccessClaims, error)
}

// Gatekeeper is what the gatekeeper routes need.
type Gatekeeper struct {
	Engine   GateEngine
	Upstream UpstreamTokens
	// PublicPaths are path prefixes (with or without the leading slash) let through without
	// authentication, Barong's "pass" rules; restrictions still apply.
	PublicPaths []string
	// Now is the clock of Upstream, for reusing its tokens; nil means time.Now.
	Now func() time.Time
}

// upstreamCache reuses an upstream token for the same claims during the first half of its
// life: signing was most of the authz endpoint's CPU. The decision itself is made again on every
// request; only the signature is spared. It is safe for concurrent use.
type upstreamCache struct {
	next UpstreamTokens
	now  func() time.Time
	mu   sync.Mutex
	m    map[auth.AccessClaims]cachedToken
}

type cachedToken struct {
	token      string
	claims     auth.AccessClaims
	reuseUntil time.Time
}

// maxCachedTokens bounds the cache; a full cache starts again empty.
const maxCachedTokens = 10000

func (c *upstreamCache) Sign(claims auth.AccessClaims) (string, auth.AccessClaims, error) {
	now := c.now()
	c.mu.Lock()
	t, ok := c.m[claims]
	c.mu.Unlock()
	if ok && now.Before(t.reuseUntil) && !now.Before(t.claims.IssuedAt) {
		return t.token, t.claims, nil
	}
	tok, signed, err := c.next.Sign(claims)
	if err != nil {
		return "", auth.AccessClaims{}, err
	}
	c.mu.Lock()
	if len(c.m) >= maxCachedTokens {
		c.m = map[auth.AccessClaims]cachedToken{}
	}
	c.m[claims] = cachedToken{token: tok, claims: signed, reuseUntil: signed.IssuedAt.Add(signed.ExpiresAt.Sub(signed.IssuedAt) / 2)}
	c.mu.Unlock()
	return tok, signed, nil
}

func (a *accountRoutes) registerGatekeeper(r *mux.Router) {
	g := a.Gatekeeper
	if g.Engine == nil || g.Upstream == nil {
		panic("api: Gatekeeper needs an Engine and Upstream tokens")
	}
	now := g.Now
	if now == nil {
		now = time.Now
	}
	a.upstream = &upstreamCache{next: g.Upstream, now: now, m: map[auth.AccessClaims]cachedToken{}}
	get := []string{http.MethodGet, http.MethodHead}
	// Every method a gateway forwards; OPTIONS stays with CORS.
	r.Handle("/api/v2/auth/{path:.*}", http.HandlerFunc(a.authorize)).
		Methods(http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete)
	admin := func(f http.HandlerFunc, ab commands.Ability) http.Handler {
		return a.authn.Middleware(RequireAbility(ab)(f))
	}
	r.Handle("/api/v2/admin/permissions", admin(a.listPermissions, commands.AbilityReadAccessPolicy)).Methods(get...)
	r.Handle("/api/v2/admin/permissions", admin(a.createPermission, commands.AbilityWriteAccessPolicy)).Methods(http.MethodPost)
	r.Handle("/api/v2/admin/permissions", admin(a.updatePermission, commands.AbilityWriteAccessPolicy)).Methods(http.MethodPut)
	r.Handle("/api/v2/admin/permissions", admin(a.deletePermission, commands.AbilityWriteAccessPolicy)).Methods(http.MethodDelete)
	r.Handle("/api/v2/admin/restrictions", admin(a.listRestrictions, commands.AbilityReadAccessPolicy)).Methods(get...)
	r.Handle("/api/v2/admin/restrictions", admin(a.createRestriction, commands.AbilityWriteAccessPolicy)).Methods(http.MethodPost)
	r.Handle("/api/v2/admin/restrictions", admin(a.updateRestriction, commands.AbilityWriteAccessPolicy)).Methods(http.MethodPut)
	r.Handle("/api/v2/admin/restrictions", admin(a.deleteRestriction, commands.AbilityWriteAccessPolicy)).Methods(http.MethodDelete)
	r.Handle("/api/v2/admin/restrictions/whitelink", admin(a.createWhitelink, commands.AbilityWriteAccessPolicy)).Methods(http.MethodPost)
	r.Handle("/api/v2/identity/users/access", http.HandlerFunc(a.useWhitelink)).Methods(http.MethodPost)
}

// originalRequest is the method and path the gateway asks about. The path is the one after
// /api/v2/auth/ when there is one, so a client cannot pick it with a header the gateway passes
// on; only a gateway that calls a fixed address (Traefik, Envoy) gives it in X-Original-URI or
// X-Forwarded-Uri. The method is X-Original-Method or X-Forwarded-Method when set (nginx's
// auth_request subrequest is configured to send it), else the request's own.
func originalRequest(r *http.Request) (method, path string) {
	path = strings.TrimPrefix(r.URL.Path, "/api/v2/auth")
	if strings.Trim(path, "/") == "" {
		for _, h := range []string{"X-Original-URI", "X-Forwarded-Uri"} {
			if v := r.Header.Get(h); v != "" {
				if u, err := url.ParseRequestURI(v); err == nil {
					path = u.Path
				}
				break
			}
		}
	}
	method = r.Method
	for _, h := range []string{"X-Original-Method", "X-Forwarded-Method"} {
		if v := r.Header.Get(h); v != "" {
			method = strings.ToUpper(v)
			break
		}
	}
	return method, strings.TrimLeft(path, "/")
}

func (a *accountRoutes) isPublic(path string) bool {
	for _, p := range a.Gatekeeper.PublicPaths {
		if strings.HasPrefix(path, strings.TrimLeft(p, "/")) {
			return true
		}
	}
	return false
}

// authorize is the authz endpoint: restrictions, then authentication (bearer or cookie session,
// or an API key signature), then permissions; 200 with a short-lived upstream token in
// Authorization, or Barong's refusal. Its answers are never cached.
func (a *accountRoutes) authorize(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	method, path := originalRequest(r)
	ip, err := netip.ParseAddr(a.clientIP(r))
	if err != nil {
		ip = netip.IPv6Unspecified()
	}
	g := a.Gatekeeper
	if ref, refused := g.Engine.Restrict(ip, path); refused {
		a.log.LogAttrs(r.Context(), slog.LevelInfo, "authz refused by a restriction", slog.String("request_id", RequestID(r.Context())),
			slog.String("category", ref.Category), slog.Int64("restriction", ref.RuleID), slog.String("path", path))
		// For a gateway, which sees the headers only (nginx's auth_request): Barong's code.
		w.Header().Set("X-Auth-Error", ref.Code)
		WriteError(w, ref.Status, ref.Code)
		return
	}
	if a.isPublic(path) {
		w.WriteHeader(http.StatusOK)
		return
	}
	// Authenticated as the original request: a cookie session's unsafe method needs its CSRF token.
	orig := r.Clone(r.Context())
	orig.Method = method
	c, status, code, err := a.authn.authenticate(orig)
	if status != 0 {
		a.authn.refuse(w, r, status, code, err)
		return
	}
	var scopes []string
	if c.APIKey != "" {
		scopes = c.Scopes
	}
	v := g.Engine.Rules().PermitScoped(c.Role, method, path, scopes)
	if !v.Allowed {
		a.log.LogAttrs(r.Context(), slog.LevelInfo, "authz denied by the permissions", slog.String("request_id", RequestID(r.Context())),
			slog.String("uid", c.UID), slog.String("role", c.Role), slog.String("method", method), slog.String("path", path))
		WriteError(w, http.StatusUnauthorized, "authz.invalid_permission")
		return
	}
	if !v.InScope { // apikey_scopes.go
		a.log.LogAttrs(r.Context(), slog.LevelInfo, "api key out of its scopes", slog.String("request_id", RequestID(r.Context())),
			slog.String("kid", c.APIKey), slog.String("method", method), slog.String("path", path))
		WriteError(w, http.StatusUnauthorized, "authz.api_key_scope")
		return
	}
	if v.Audit {
		// Recorded before the request goes on: an audited request that cannot be recorded does not pass.
		m := a.meta(r)
		m.IP, m.ActorUID, m.ActorRole, m.IdempotencyKey = ip.String(), c.UID, c.Role, ""
		if _, err := a.App.Commands.AuditRequest.Handle(r.Context(), commands.AuditRequest{
			Meta: m, UID: domain.UserID(c.UID), Topic: v.Topic, Method: method, Path: path,
		}); err != nil {
			a.fail(w, r, "authz", err)
			return
		}
		a.log.LogAttrs(r.Context(), slog.LevelInfo, "audit", slog.String("topic", v.Topic), slog.String("request_id", RequestID(r.Context())),
			slog.String("uid", c.UID), slog.String("role", c.Role), slog.String("method", method), slog.String("path", path), slog.String("ip", ip.String()))
	}
	sid := c.SessionID
	if c.APIKey != "" {
		sid = "apikey:" + c.APIKey
	}
	tok, _, err := a.upstream.Sign(auth.AccessClaims{UserID: c.UID, SessionID: sid, Role: c.Role, Level: c.Level, Email: c.Email})
	if err != nil {
		a.fail(w, r, "authz", err)
		return
	}
	w.Header().Set("Authorization", "Bearer "+tok)
	w.Header().Set("X-User-UID", c.UID)
	w.WriteHeader(http.StatusOK)
}

// Lists: the policy as the engine holds it (an in-memory read model of the policy's stream),
// paginated as Barong's lists are.

type permissionJSON struct {
	ID     int64  `json:"id"`
	Role   string `json:"role"`
	Verb   string `json:"verb"`
	Path   string `json:"path"`
	Action string `json:"action"`
	Topic  string `json:"topic"`
}

type restrictionJSON struct {
	ID       int64  `json:"id"`
	Category string `json:"category"`
	Scope    string `json:"scope"`
	Value    string `json:"value"`
	Code     int    `json:"code"`
	State    string `json:"state"`
}

func permissionJSONOf(p domain.Permission) permissionJSON {
	return permissionJSON{ID: p.ID, Role: p.Role, Verb: p.Verb, Path: p.Path, Action: p.Action, Topic: p.Topic}
}

func restrictionJSONOf(x domain.Restriction) restrictionJSON {
	return restrictionJSON{ID: x.ID, Category: x.Category, Scope: x.Scope, Value: x.Value, Code: x.Code, State: x.State}
}

func pageOf[T any](w http.ResponseWriter, r *http.Request, scope string, all []T) ([]T, bool) {
	q := r.URL.Query()
	page, limit, bad := readPage(q.Get("page"), q.Get("limit"), scope)
	if bad != nil {
		WriteError(w, http.StatusUnprocessableEntity, bad...)
		return nil, false
	}
	if page == 0 {
		page = 1
	}
	if limit == 0 || limit > 100 {
		limit = 100
	}
	setPageHeaders(w, len(all), page, limit)
	from := min((page-1)*limit, len(all))
	return all[from:min(from+limit, len(all))], true
}

// fresh reads the policy's latest events before a list, so an administrator reading after a
// change made on another replica sees it.
func (a *accountRoutes) fresh(w http.ResponseWriter, r *http.Request) bool {
	if err := a.Gatekeeper.Engine.Refresh(r.Context()); err != nil {
		a.fail(w, r, scopeAdminPermission, err)
		return false
	}
	return true
}

func (a *accountRoutes) listPermissions(w http.ResponseWriter, r *http.Request) {
	if !a.fresh(w, r) {
		return
	}
	all := a.Gatekeeper.Engine.Rules().Policy().Permissions()
	page, ok := pageOf(w, r, scopeAdminPermission, all)
	if !ok {
		return
	}
	out := make([]permissionJSON, len(page))
	for i, p := range page {
		out[i] = permissionJSONOf(p)
	}
	WriteJSON(w, http.StatusOK, out)
}

func (a *accountRoutes) listRestrictions(w http.ResponseWriter, r *http.Request) {
	if !a.fresh(w, r) {
		return
	}
	q := r.URL.Query()
	var all []domain.Restriction
	for _, x := range a.Gatekeeper.Engine.Rules().Policy().Restrictions() {
		if (q.Get("scope") == "" || x.Scope == q.Get("scope")) && (q.Get("category") == "" || x.Category == q.Get("category")) {
			all = append(all, x)
		}
	}
	page, ok := pageOf(w, r, scopeAdminRestriction, all)
	if !ok {
		return
	}
	out := make([]restrictionJSON, len(page))
	for i, x := range page {
		out[i] = restrictionJSONOf(x)
	}
	WriteJSON(w, http.StatusOK, out)
}

// policyAnswer applies the change on this replica at once and answers with the rule.
func (a *accountRoutes) policyAnswer(w http.ResponseWriter, r *http.Request, status int, scope string, res commands.PolicyResult, err error) {
	if err != nil {
		a.fail(w, r, scope, err)
		return
	}
	if err := a.Gatekeeper.Engine.Refresh(r.Context()); err != nil {
		a.log.LogAttrs(r.Context(), slog.LevelWarn, "access policy not refreshed after a change", slog.Any("error", err))
	}
	switch {
	case status == http.StatusNoContent:
		w.WriteHeader(status)
	case res.Permission.ID != 0:
		WriteJSON(w, status, permissionJSONOf(res.Permission))
	default:
		WriteJSON(w, status, restrictionJSONOf(res.Restriction))
	}
}

// idParam reads the rule id (form or JSON body, or the query for DELETE), answering 422 itself.
func idParam(w http.ResponseWriter, p params, r *http.Request, scope string) (int64, bool) {
	s := p.str("id")
	if s == "" {
		s = r.URL.Query().Get("id")
	}
	if s == "" {
		WriteError(w, http.StatusUnprocessableEntity, scope+".missing_id")
		return 0, false
	}
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		WriteError(w, http.StatusUnprocessableEntity, scope+".invalid_id")
		return 0, false
	}
	return id, true
}

func optional(p params, name string) *string {
	if !p.present(name) {
		return nil
	}
	s := p.str(name)
	return &s
}

func (a *accountRoutes) createPermission(w http.ResponseWriter, r *http.Request) {
	p, ok := a.params(w, r)
	if !ok || !require(w, p, scopeAdminPermission, "role", "verb", "path", "action") {
		return
	}
	res, err := a.App.Policy.CreatePermission(r.Context(), a.meta(r), domain.Permission{
		Role: p.str("role"), Verb: p.str("verb"), Path: p.str("path"), Action: p.str("action"), Topic: p.str("topic"),
	})
	a.policyAnswer(w, r, http.StatusCreated, scopeAdminPermission, res, err)
}

func (a *accountRoutes) updatePermission(w http.ResponseWriter, r *http.Request) {
	p, ok := a.params(w, r)
	if !ok {
		return
	}
	id, ok := idParam(w, p, r, scopeAdminPermission)
	if !ok {
		return
	}
	res, err := a.App.Policy.UpdatePermission(r.Context(), a.meta(r), id, domain.PermissionPatch{
		Role: optional(p, "role"), Verb: optional(p, "verb"), Path: optional(p, "path"), Action: optional(p, "action"), Topic: optional(p, "topic"),
	})
	a.policyAnswer(w, r, http.StatusOK, scopeAdminPermission, res, err)
}

func (a *accountRoutes) deletePermission(w http.ResponseWriter, r *http.Request) {
	id, ok := idParam(w, params{}, r, scopeAdminPermission)
	if !ok {
		return
	}
	res, err := a.App.Policy.DeletePermission(r.Context(), a.meta(r), id)
	a.policyAnswer(w, r, http.StatusNoContent, scopeAdminPermission, res, err)
}

// codeParam reads a restriction's optional status code.
func codeParam(w http.ResponseWriter, p params) (*int, bool) {
	if p.str("code") == "" {
		return nil, true
	}
	n, err := strconv.Atoi(p.str("code"))
	if err != nil {
		WriteError(w, http.StatusUnprocessableEntity, scopeAdminRestriction+".invalid_code")
		return nil, false
	}
	return &n, true
}

func (a *accountRoutes) createRestriction(w http.ResponseWriter, r *http.Request) {
	p, ok := a.params(w, r)
	if !ok || !require(w, p, scopeAdminRestriction, "scope", "value", "category") {
		return
	}
	code, ok := codeParam(w, p)
	if !ok {
		return
	}
	x := domain.Restriction{Category: p.str("category"), Scope: p.str("scope"), Value: p.str("value"), State: p.str("state")}
	if code != nil {
		x.Code = *code
	}
	res, err := a.App.Policy.CreateRestriction(r.Context(), a.meta(r), x)
	a.policyAnswer(w, r, http.StatusCreated, scopeAdminRestriction, res, err)
}

func (a *accountRoutes) updateRestriction(w http.ResponseWriter, r *http.Request) {
	p, ok := a.params(w, r)
	if !ok {
		return
	}
	id, ok := idParam(w, p, r, scopeAdminRestriction)
	if !ok {
		return
	}
	code, ok := codeParam(w, p)
	if !ok {
		return
	}
	res, err := a.App.Policy.UpdateRestriction(r.Context(), a.meta(r), id, domain.RestrictionPatch{
		Category: optional(p, "category"), Scope: optional(p, "scope"), Value: optional(p, "value"), State: optional(p, "state"), Code: code,
	})
	a.policyAnswer(w, r, http.StatusOK, scopeAdminRestriction, res, err)
}

func (a *accountRoutes) deleteRestriction(w http.ResponseWriter, r *http.Request) {
	id, ok := idParam(w, params{}, r, scopeAdminRestriction)
	if !ok {
		return
	}
	res, err := a.App.Policy.DeleteRestriction(r.Context(), a.meta(r), id)
	a.policyAnswer(w, r, http.StatusNoContent, scopeAdminRestriction, res, err)
}

// createWhitelink answers Barong's whitelink: a token valid for expire_time (a number of
// `range`: s, m, h or d; default 24 hours).
func (a *accountRoutes) createWhitelink(w http.ResponseWriter, r *http.Request) {
	p, ok := a.params(w, r)
	if !ok {
		return
	}
	var ttl time.Duration
	if s := p.str("expire_time"); s != "" {
		n, err := strconv.Atoi(s)
		unit := map[string]time.Duration{"": time.Second, "s": time.Second, "m": time.Minute, "h": time.Hour, "d": 24 * time.Hour}[p.str("range")]
		if err != nil || n <= 0 || unit == 0 {
			WriteError(w, http.StatusUnprocessableEntity, scopeAdminRestriction+".invalid_expire_time")
			return
		}
		ttl = time.Duration(n) * unit
	}
	token, expires, err := a.App.Policy.CreateWhitelink(a.meta(r), ttl)
	if err != nil {
		if errors.Is(err, commands.ErrCommandInvalid) {
			WriteError(w, http.StatusUnprocessableEntity, scopeAdminRestriction+".invalid_expire_time")
			return
		}
		a.fail(w, r, scopeAdminRestriction, err)
		return
	}
	noStore(w)
	WriteJSON(w, http.StatusCreated, map[string]any{"whitelink_token": token, "expires_at": expires})
}

// useWhitelink whitelists the caller's address with a whitelink token (the attempt limiter
// counts wrong tokens per address).
func (a *accountRoutes) useWhitelink(w http.ResponseWriter, r *http.Request) {
	p, ok := a.params(w, r)
	if !ok || !require(w, p, scopeIdentityAccess, "whitelink_token") {
		return
	}
	_, err := a.App.Commands.UseWhitelink.Handle(r.Context(), commands.UseWhitelink{Meta: a.meta(r), Token: p.str("whitelink_token")})
	if err != nil {
		a.fail(w, r, scopeIdentityAccess, err)
		return
	}
	if err := a.Gatekeeper.Engine.Refresh(r.Context()); err != nil {
		a.log.LogAttrs(r.Context(), slog.LevelWarn, "access policy not refreshed after a whitelink", slog.Any("error", err))
	}
	w.WriteHeader(http.StatusCreated)
}

// loginRestricted applies the restrictions to a sign-in made to idlog directly, not through the
// gateway, as the authz endpoint would to its path (authz.LoginPath): blocklogin, blacklist and
// maintenance refuse it unless a whitelist lets it through. It reports whether it answered.
func (a *accountRoutes) loginRestricted(w http.ResponseWriter, r *http.Request) bool {
	if a.Gatekeeper == nil {
		return false
	}
	ip, err := netip.ParseAddr(a.clientIP(r))
	if err != nil {
		return false
	}
	ref, refused := a.Gatekeeper.Engine.Restrict(ip, authz.LoginPath)
	if !refused {
		return false
	}
	a.log.LogAttrs(r.Context(), slog.LevelInfo, "sign-in refused by a restriction", slog.String("request_id", RequestID(r.Context())),
		slog.String("category", ref.Category), slog.Int64("restriction", ref.RuleID))
	WriteError(w, ref.Status, ref.Code)
	return true
}
