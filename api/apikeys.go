package api

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/idlog/idlog/apikeys"
	"github.com/idlog/idlog/commands"
	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/projections"
)

// API keys, Barong's: GET|POST /api/v2/resource/api_keys, PATCH|DELETE
// /api/v2/resource/api_keys/{kid}, GET /api/v2/admin/api_keys. Creating, changing and deleting a
// key take a TOTP code (totp_code); the secret is in the creation's answer only. A signed-in
// session manages keys: a request authenticated by an API key cannot.

const (
	scopeResourceAPIKey = "resource.api_key"
	scopeAdminAPIKey    = "admin.api_key"
)

// APIKeyRecords reads the API keys read model (projections.APIKeysView).
type APIKeyRecords interface {
	ListByUID(ctx context.Context, uid string, page, limit int) ([]projections.APIKey, int, error)
}

// APIKeyVerifier checks a request signed with an API key; *apikeys.Verifier is one.
type APIKeyVerifier interface {
	Verify(ctx context.Context, kid, nonce, signature, ip string) (commands.KeyHolder, error)
}

// apiKeyJSON is Barong's APIKey; secret only in the answer to its creation.
type apiKeyJSON struct {
	KID       string    `json:"kid"`
	Algorithm string    `json:"algorithm"`
	Scope     []string  `json:"scope"`
	State     string    `json:"state"`
	Secret    string    `json:"secret,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

func apiKeyJSONOf(k projections.APIKey) apiKeyJSON {
	s := k.Scopes
	if s == nil {
		s = []string{}
	}
	return apiKeyJSON{KID: k.KID, Algorithm: k.Algorithm, Scope: s, State: k.State, CreatedAt: k.CreatedAt.UTC(), UpdatedAt: k.UpdatedAt.UTC()}
}

func (a *accountRoutes) registerAPIKeys(r, res *mux.Router) {
	get := []string{http.MethodGet, http.MethodHead}
	h := func(f http.HandlerFunc) http.Handler { return sessionOnly(f) }
	res.Handle("/api_keys", h(a.myAPIKeys)).Methods(get...)
	// Ignores Idempotency-Key (unkeyedRoutes): its answer holds the secret, which is never kept.
	res.Handle("/api_keys", h(a.createAPIKey)).Methods(http.MethodPost)
	res.Handle("/api_keys/{kid}", h(a.changeAPIKey)).Methods(http.MethodPatch)
	res.Handle("/api_keys/{kid}", h(a.deleteAPIKey)).Methods(http.MethodDelete)
	r.Handle("/api/v2/admin/api_keys", a.authn.Middleware(RequireAbility(commands.AbilityReadUsers)(http.HandlerFunc(a.adminAPIKeys)))).Methods(get...)
}

// sessionOnly refuses callers authenticated by an API key: keys are managed from a session.
func sessionOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c, ok := CallerFrom(r.Context()); ok && c.APIKey != "" {
			WriteError(w, http.StatusForbidden, scopeResourceAPIKey+".session_required")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// scopesParam reads scope: a comma-separated string (Barong) or a JSON array; nil if absent.
func scopesParam(p params) (*[]string, bool) {
	if !p.present("scope") {
		return nil, true
	}
	var list []string
	if json.Unmarshal(p["scope"], &list) == nil {
		return &list, true
	}
	var s string
	if json.Unmarshal(p["scope"], &s) != nil {
		return nil, false
	}
	list = []string{}
	for part := range strings.SplitSeq(s, ",") {
		list = append(list, part)
	}
	return &list, true
}

func (a *accountRoutes) myAPIKeys(w http.ResponseWriter, r *http.Request) {
	c, _ := CallerFrom(r.Context())
	a.listAPIKeys(w, r, scopeResourceAPIKey, c.UID)
}

func (a *accountRoutes) adminAPIKeys(w http.ResponseWriter, r *http.Request) {
	uid := r.URL.Query().Get("uid")
	if uid == "" {
		WriteError(w, http.StatusUnprocessableEntity, scopeAdminAPIKey+".missing_uid")
		return
	}
	a.listAPIKeys(w, r, scopeAdminAPIKey, uid)
}

func (a *accountRoutes) listAPIKeys(w http.ResponseWriter, r *http.Request, scope, uid string) {
	q := r.URL.Query()
	page, limit, bad := readPage(q.Get("page"), q.Get("limit"), scope)
	if bad != nil {
		WriteError(w, http.StatusUnprocessableEntity, bad...)
		return
	}
	list, total, err := a.APIKeys.ListByUID(r.Context(), uid, page, limit)
	if err != nil {
		writeViewError(w, r, a.log, scope, err)
		return
	}
	out := make([]apiKeyJSON, len(list))
	for i, k := range list {
		out[i] = apiKeyJSONOf(k)
	}
	setPageHeaders(w, total, page, limit)
	WriteJSON(w, http.StatusOK, out)
}

// answerAPIKey waits for the read model and answers with the key as it shows it, or, when it is
// late, as the command left it.
func (a *accountRoutes) answerAPIKey(w http.ResponseWriter, r *http.Request, status int, res commands.APIKeyResult, fallback apiKeyJSON) {
	a.caughtUp(r.Context(), res.Position)
	out := fallback
	if list, _, err := a.APIKeys.ListByUID(r.Context(), res.Account.UID, 1, domain.MaxAPIKeysPerUser); err == nil {
		if i := slices.IndexFunc(list, func(k projections.APIKey) bool { return k.KID == res.KID }); i >= 0 {
			out = apiKeyJSONOf(list[i])
		}
	} else {
		a.log.LogAttrs(r.Context(), slog.LevelWarn, "answering an api key change without the read model",
			slog.String("request_id", RequestID(r.Context())), slog.Any("error", err))
	}
	out.Secret = res.Secret
	noStore(w)
	WriteJSON(w, status, out)
}

func (a *accountRoutes) createAPIKey(w http.ResponseWriter, r *http.Request) {
	p, ok := a.params(w, r)
	if !ok || !require(w, p, scopeResourceAPIKey, "algorithm", "totp_code") {
		return
	}
	if !slices.Contains(domain.APIKeyAlgorithms, p.str("algorithm")) {
		WriteError(w, http.StatusUnprocessableEntity, scopeResourceAPIKey+".invalid_algorithm")
		return
	}
	scopes, ok := scopesParam(p)
	if !ok {
		WriteError(w, http.StatusUnprocessableEntity, scopeResourceAPIKey+".invalid_scope")
		return
	}
	cmd := commands.CreateAPIKey{Meta: a.meta(r), KID: p.str("kid"), Algorithm: p.str("algorithm"), Code: p.str("totp_code")}
	c, _ := CallerFrom(r.Context())
	cmd.UID = uidOf(c)
	if scopes != nil {
		cmd.Scopes = *scopes
	}
	res, err := a.App.Commands.CreateAPIKey.Handle(r.Context(), cmd)
	if err != nil {
		a.fail(w, r, scopeResourceAPIKey, err)
		return
	}
	now := time.Now().UTC()
	a.answerAPIKey(w, r, http.StatusCreated, res, apiKeyJSON{KID: res.KID, Algorithm: cmd.Algorithm, Scope: cmd.Scopes,
		State: string(domain.APIKeyActive), CreatedAt: now, UpdatedAt: now})
}

func (a *accountRoutes) changeAPIKey(w http.ResponseWriter, r *http.Request) {
	p, ok := a.params(w, r)
	if !ok || !require(w, p, scopeResourceAPIKey, "totp_code") {
		return
	}
	scopes, ok := scopesParam(p)
	if !ok {
		WriteError(w, http.StatusUnprocessableEntity, scopeResourceAPIKey+".invalid_scope")
		return
	}
	var state *domain.APIKeyState
	if s := p.str("state"); s != "" {
		st, err := domain.ParseAPIKeyState(s)
		if err != nil {
			WriteError(w, http.StatusUnprocessableEntity, scopeResourceAPIKey+".invalid_state")
			return
		}
		state = &st
	}
	c, _ := CallerFrom(r.Context())
	res, err := a.App.Commands.ChangeAPIKey.Handle(r.Context(), commands.ChangeAPIKey{
		Meta: a.meta(r), UID: uidOf(c), KID: mux.Vars(r)["kid"], Scopes: scopes, State: state, Code: p.str("totp_code"),
	})
	if err != nil {
		a.fail(w, r, scopeResourceAPIKey, err)
		return
	}
	a.answerAPIKey(w, r, http.StatusOK, res, apiKeyJSON{KID: res.KID})
}

func (a *accountRoutes) deleteAPIKey(w http.ResponseWriter, r *http.Request) {
	code := r.URL.Query().Get("totp_code")
	if code == "" {
		if p, err := readParams(r); err == nil {
			code = p.str("totp_code")
		}
	}
	if code == "" {
		WriteError(w, http.StatusUnprocessableEntity, scopeResourceAPIKey+".missing_totp_code")
		return
	}
	c, _ := CallerFrom(r.Context())
	res, err := a.App.Commands.DeleteAPIKey.Handle(r.Context(), commands.DeleteAPIKey{
		Meta: a.meta(r), UID: uidOf(c), KID: mux.Vars(r)["kid"], Code: code,
	})
	if err != nil {
		a.fail(w, r, scopeResourceAPIKey, err)
		return
	}
	a.caughtUp(r.Context(), res.Position)
	w.WriteHeader(http.StatusNoContent)
}

// apiKeyCaller authenticates a request signed with an API key: the caller, or the status and
// code to answer (and the error behind them, for the log).
func (a *Authenticator) apiKeyCaller(r *http.Request) (Caller, int, string, error) {
	ip := r.RemoteAddr
	if a.clientIP != nil {
		ip = a.clientIP(r)
	}
	k, err := a.apiKeys.Verify(r.Context(), r.Header.Get(apikeys.HeaderKID), r.Header.Get(apikeys.HeaderNonce), r.Header.Get(apikeys.HeaderSignature), ip)
	if err != nil {
		status, code := apiKeyRefusal(err)
		return Caller{}, status, code, err
	}
	return Caller{UID: k.UID, Role: k.Role, Email: k.Email, Level: k.Level, APIKey: r.Header.Get(apikeys.HeaderKID), Scopes: k.Scopes}, 0, "", nil
}

// apiKeyRefusal maps a failed API key check to Barong's status and code.
func apiKeyRefusal(err error) (int, string) {
	var throttled *apikeys.ThrottledError
	switch {
	case errors.As(err, &throttled):
		return http.StatusTooManyRequests, "authz.too_many_attempts"
	case errors.Is(err, apikeys.ErrHeaders):
		return http.StatusUnauthorized, "authz.invalid_api_key_headers"
	case errors.Is(err, apikeys.ErrNonceWindow):
		return http.StatusUnauthorized, "authz.nonce_expired"
	case errors.Is(err, apikeys.ErrNonceReused):
		return http.StatusUnauthorized, "authz.nonce_reused"
	case errors.Is(err, apikeys.ErrSignature):
		return http.StatusUnauthorized, "authz.invalid_signature"
	case errors.Is(err, apikeys.ErrKeyDisabled):
		return http.StatusUnauthorized, "authz.apikey_not_active"
	case errors.Is(err, apikeys.ErrOwner):
		return http.StatusUnauthorized, "authz.user_not_active"
	case errors.Is(err, apikeys.ErrOwnerNo2FA):
		return http.StatusUnauthorized, "authz.disabled_2fa"
	}
	return http.StatusServiceUnavailable, "server.unavailable"
}
