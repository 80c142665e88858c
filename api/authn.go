package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/idlog/idlog/apikeys"
	"github.com/idlog/idlog/auth"
	"github.com/idlog/idlog/commands"
)

// Caller is the signed-in user a request comes from, as the bearer middleware found them: the
// user id and session of a valid token whose session is still open, with the user's current role
// (not the one in the token, which may be older).
type Caller struct {
	UID       string
	SessionID string
	Role      string
	Email     string
	Level     int
	// Cookie: authenticated by the session cookie rather than a bearer token.
	Cookie bool
	// APIKey is the kid of the API key that signed the request (apikeys.go), with its Scopes;
	// SessionID is then empty.
	APIKey string
	Scopes []string
}

type callerKey struct{}

// CallerFrom returns the caller of an authenticated request: false outside the bearer middleware.
func CallerFrom(ctx context.Context) (Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(Caller)
	return c, ok
}

// WithCaller returns ctx carrying c, for handlers tested without the bearer middleware.
func WithCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// TokenVerifier checks access tokens; *auth.Signer is one.
type TokenVerifier interface {
	Verify(token string) (auth.AccessClaims, error)
}

// SessionChecker tells whether a token's session is still open; commands.SessionCheck is one.
type SessionChecker interface {
	Open(ctx context.Context, uid, sid string) (commands.Session, bool, error)
	// OpenAt is Open for a caller who read the version of the user's last event (0: none) in the
	// same statement as the user's data: it reads the store only if this process does not hold
	// the user at that version already, and is as fresh as Open.
	OpenAt(ctx context.Context, uid, sid string, version uint64) (commands.Session, bool, error)
}

// Authenticator is the bearer middleware: "Authorization: Bearer <access token>", or for a browser
// app's cookie session, the access token in the session cookie (AccessCookie) and, on unsafe
// methods, the session's CSRF token in X-CSRF-Token.
type Authenticator struct {
	tokens   TokenVerifier
	sessions SessionChecker
	log      *slog.Logger
	apiKeys  APIKeyVerifier // nil: API keys are not accepted
	clientIP func(*http.Request) string
}

// WithAPIKeys makes the middleware accept requests signed with an API key (X-Auth-Apikey), and
// returns a. clientIP gives a request's client address, for the attempt limiter; nil takes
// RemoteAddr.
func (a *Authenticator) WithAPIKeys(v APIKeyVerifier, clientIP func(*http.Request) string) *Authenticator {
	a.apiKeys, a.clientIP = v, clientIP
	return a
}

// NewAuthenticator returns the middleware's maker. Nil dependencies panic.
func NewAuthenticator(tokens TokenVerifier, sessions SessionChecker, log *slog.Logger) *Authenticator {
	if tokens == nil || sessions == nil {
		panic("api: NewAuthenticator needs a token verifier and a session checker")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Authenticator{tokens: tokens, sessions: sessions, log: log}
}

// Middleware lets a request through only with a valid access token whose session is open, and
// puts the Caller in its context (CallerFrom). Otherwise it answers 401: authz.missing_token
// without a bearer token, jwt.decode_and_verify for a token that fails verification (forged,
// expired, another algorithm, key or audience), authz.invalid_session for a closed session. A
// request that already carries a Caller (found by the idempotency decorator, which runs first)
// is not checked twice.
func (a *Authenticator) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c, ok := CallerFrom(r.Context()); ok {
			if a.inScope(w, r, c) { // apikey_scopes.go
				next.ServeHTTP(w, r)
			}
			return
		}
		c, status, code, err := a.authenticate(r)
		if status != 0 {
			a.refuse(w, r, status, code, err)
			return
		}
		if !a.inScope(w, r, c) {
			return
		}
		next.ServeHTTP(w, r.WithContext(WithCaller(r.Context(), c)))
	})
}

// refuse answers a failed bearer check: 401 with its code, 403 for a cookie session's unsafe
// request without its CSRF token, or 503 when the session could not be checked.
func (a *Authenticator) refuse(w http.ResponseWriter, r *http.Request, status int, code string, err error) {
	if status == http.StatusServiceUnavailable {
		a.log.LogAttrs(r.Context(), slog.LevelError, "session check failed",
			slog.String("request_id", RequestID(r.Context())), slog.Any("error", err))
		WriteError(w, status, code)
		return
	}
	if err != nil {
		// The reason goes to the log only: a client learns nothing about the keys.
		a.log.LogAttrs(r.Context(), slog.LevelInfo, "access token refused",
			slog.String("request_id", RequestID(r.Context())), slog.Any("error", cause(err)))
	}
	var throttled *apikeys.ThrottledError
	if errors.As(err, &throttled) {
		w.Header().Set("Retry-After", strconv.Itoa(int((throttled.RetryAfter+time.Second-1)/time.Second)))
	}
	if status == http.StatusForbidden || status == http.StatusTooManyRequests {
		WriteError(w, status, code)
		return
	}
	if code == "authz.missing_token" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="idlog"`)
	} else {
		w.Header().Set("WWW-Authenticate", `Bearer realm="idlog", error="invalid_token"`)
	}
	WriteError(w, status, code)
}

// caller is the signed-in caller of r, ok false if its bearer token is missing or fails. uid is
// the user of a token that verifies, even when its session is closed (a sign-out, then its retry).
func (a *Authenticator) caller(r *http.Request) (c Caller, uid string, ok bool) {
	c, status, _, _ := a.authenticate(r)
	if status == 0 {
		return c, c.UID, true
	}
	return Caller{}, c.UID, false
}

// authenticate checks r's bearer token and session: the caller, or the status and code to
// answer (and the error behind them, for the log).
func (a *Authenticator) authenticate(r *http.Request) (Caller, int, string, error) {
	if a.apiKeys != nil && r.Header.Get(apikeys.HeaderKID) != "" {
		return a.apiKeyCaller(r)
	}
	claims, cookie, status, code, err := a.verify(r)
	if status != 0 {
		return Caller{}, status, code, err
	}
	return a.session(r, claims, cookie)
}

// session checks the session of verified claims: the caller, or the status to answer. cookie
// says the token came in the session cookie.
func (a *Authenticator) session(r *http.Request, claims auth.AccessClaims, cookie bool) (Caller, int, string, error) {
	sess, open, err := a.sessions.Open(r.Context(), claims.UserID, claims.SessionID)
	return a.check(r, claims, cookie, sess, open, err)
}

// sessionAt is session for a route that read the version of the token's user's last event in the
// same statement as their data (see SessionChecker.OpenAt).
func (a *Authenticator) sessionAt(r *http.Request, claims auth.AccessClaims, cookie bool, version uint64) (Caller, int, string, error) {
	sess, open, err := a.sessions.OpenAt(r.Context(), claims.UserID, claims.SessionID, version)
	return a.check(r, claims, cookie, sess, open, err)
}

// verify checks r's access token, from the Authorization header or else the session cookie: its
// claims and whether it came in the cookie, or the status and code to answer.
func (a *Authenticator) verify(r *http.Request) (claims auth.AccessClaims, cookie bool, status int, code string, err error) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if r.Header.Get("Authorization") == "" {
		if c, err := r.Cookie(AccessCookie); err == nil && c.Value != "" {
			scheme, token, ok, cookie = "Bearer", c.Value, true, true
		}
	}
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return auth.AccessClaims{}, false, http.StatusUnauthorized, "authz.missing_token", nil
	}
	claims, err = a.tokens.Verify(strings.TrimSpace(token))
	if err != nil {
		return auth.AccessClaims{}, false, http.StatusUnauthorized, "jwt.decode_and_verify", err
	}
	return claims, cookie, 0, "", nil
}

// check turns a session check of a verified token into the caller, or the status to answer.
func (a *Authenticator) check(r *http.Request, claims auth.AccessClaims, cookie bool, s commands.Session, open bool, err error) (Caller, int, string, error) {
	if err != nil {
		return Caller{}, http.StatusServiceUnavailable, "server.unavailable", err
	}
	if !open {
		return Caller{UID: claims.UserID}, http.StatusUnauthorized, "authz.invalid_session", nil
	}
	if cookie && !safeMethod(r.Method) && !s.CSRFMatches(r.Header.Get(CSRFHeader)) {
		// A cross-site form or script can make the browser send the cookie, never this header.
		return Caller{UID: claims.UserID}, http.StatusForbidden, "authz.invalid_csrf_token", nil
	}
	return Caller{UID: claims.UserID, SessionID: claims.SessionID, Role: s.Role, Email: s.Email, Level: s.Level, Cookie: cookie}, 0, "", nil
}

// safeMethod: methods that change nothing (RFC 9110 9.2.1), which need no CSRF token.
func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// cause is the specific reason auth.Signer.Verify wraps with ErrAccessToken, for the log.
func cause(err error) error {
	for _, e := range []error{
		auth.ErrAccessTokenMalformed, auth.ErrAccessTokenAlgorithm, auth.ErrAccessTokenUnknownKey,
		auth.ErrAccessTokenSignature, auth.ErrAccessTokenExpired, auth.ErrAccessTokenNotYetValid,
		auth.ErrAccessTokenIssuer, auth.ErrAccessTokenAudience, auth.ErrAccessTokenClaims,
	} {
		if errors.Is(err, e) {
			return e
		}
	}
	return err
}

// RequireRole lets through only callers with one of the roles (domain role names: "admin",
// "superadmin", ...). Put it after the bearer middleware: without a caller it answers 401, with
// another role 403 admin.ability.not_permitted, as RequireAbility does: one code for "your role may not do this".
func RequireRole(roles ...string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, ok := CallerFrom(r.Context())
			if !ok {
				WriteError(w, http.StatusUnauthorized, "authz.missing_token")
				return
			}
			if !slices.Contains(roles, c.Role) {
				WriteError(w, http.StatusForbidden, "admin.ability.not_permitted")
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}
