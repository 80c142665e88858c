package api

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/idlog/idlog/commands"
	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/projections"
)

// Sessions that last and sessions you can see: the refresh route, cookie sessions for browser
// apps, the signed-in user's list of sessions and the administrators' routes that end them.

// Cookies of a cookie session. The access token's cookie goes to every route and lives as long as
// the token; the refresh token's goes only to the session routes (its Path), SameSite=Strict, and
// lives as long as the session may without a refresh. Both are HttpOnly: scripts never see them.
const (
	AccessCookie  = "idlog_session"
	RefreshCookie = "idlog_refresh"
	// CSRFHeader carries the CSRF token on unsafe requests authenticated by the access cookie.
	CSRFHeader  = "X-CSRF-Token"
	refreshPath = "/api/v2/identity/sessions"
)

const scopeResourceSession = "resource.session"

// SessionList is the sessions read model; *projections.SessionsView is one.
type SessionList interface {
	ForUser(ctx context.Context, uid string, now time.Time) ([]projections.Session, error)
}

// cookieSecure tells whether cookies must be Secure: always when the public URL is https
// (SecureCookies), else when this request came over TLS, directly or, behind a trusted proxy,
// as X-Forwarded-Proto says.
func (a *accountRoutes) cookieSecure(r *http.Request) bool {
	return a.SecureCookies || r.TLS != nil || a.TrustForwardedFor && strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

// setSessionCookies sets the cookies of a cookie session.
func (a *accountRoutes) setSessionCookies(w http.ResponseWriter, r *http.Request, access string, accessExpires time.Time, refresh string, sessionExpires time.Time) {
	secure := a.cookieSecure(r)
	now := time.Now()
	http.SetCookie(w, &http.Cookie{
		Name: AccessCookie, Value: access, Path: "/", HttpOnly: true, Secure: secure, SameSite: http.SameSiteLaxMode,
		MaxAge: max(1, int(accessExpires.Sub(now)/time.Second)),
	})
	http.SetCookie(w, &http.Cookie{
		Name: RefreshCookie, Value: refresh, Path: refreshPath, HttpOnly: true, Secure: secure, SameSite: http.SameSiteStrictMode,
		MaxAge: max(1, int(sessionExpires.Sub(now)/time.Second)),
	})
}

// clearSessionCookies tells the browser to forget the cookies of a session that ended.
func (a *accountRoutes) clearSessionCookies(w http.ResponseWriter, r *http.Request) {
	secure := a.cookieSecure(r)
	http.SetCookie(w, &http.Cookie{Name: AccessCookie, Path: "/", HttpOnly: true, Secure: secure, SameSite: http.SameSiteLaxMode, MaxAge: -1})
	http.SetCookie(w, &http.Cookie{Name: RefreshCookie, Path: refreshPath, HttpOnly: true, Secure: secure, SameSite: http.SameSiteStrictMode, MaxAge: -1})
}

// wantsCookies tells whether a sign-in asked for a cookie session: the setting, or the request's
// "cookie" parameter (true or false overrides the setting).
func (a *accountRoutes) wantsCookies(p params) bool {
	if v := p.str("cookie"); v != "" {
		b, err := strconv.ParseBool(v)
		return err == nil && b
	}
	return a.SessionCookies
}

// cookieSessionJSON answers a sign-in or a refresh of a cookie session: the tokens are in the
// cookies, out of reach of scripts; the body holds what the app needs (Barong's csrf_token).
type cookieSessionJSON struct {
	User             *userJSON `json:"user,omitempty"`
	CSRFToken        string    `json:"csrf_token"`
	ExpiresAt        time.Time `json:"expires_at"`
	SessionExpiresAt time.Time `json:"session_expires_at"`
}

// refreshJSON answers a refresh of a bearer session.
type refreshJSON struct {
	AccessToken      string    `json:"access_token"`
	TokenType        string    `json:"token_type"`
	ExpiresAt        time.Time `json:"expires_at"`
	ExpiresIn        int64     `json:"expires_in"`
	RefreshToken     string    `json:"refresh_token"`
	SessionExpiresAt time.Time `json:"session_expires_at"`
}

// refresh is POST /api/v2/identity/sessions/refresh: the refresh token in the body (refresh_token)
// renews a bearer session; without it, the refresh cookie renews a cookie session. Each use
// rotates the token; a rotated token used again ends the session (401
// identity.session.refresh_token_reused).
func (a *accountRoutes) refresh(w http.ResponseWriter, r *http.Request) {
	p, ok := a.params(w, r)
	if !ok {
		return
	}
	token, cookie := p.str("refresh_token"), false
	if token == "" {
		if c, err := r.Cookie(RefreshCookie); err == nil && c.Value != "" {
			token, cookie = c.Value, true
		}
	}
	if token == "" {
		WriteError(w, http.StatusUnprocessableEntity, scopeIdentitySession+".missing_refresh_token")
		return
	}
	if cookie && !a.sameSiteOrigin(r) {
		// Browsers do not send a SameSite=Strict cookie across sites; an Origin that is neither
		// this host nor an allowed one is refused anyway.
		WriteError(w, http.StatusForbidden, "authz.invalid_origin")
		return
	}
	res, err := a.App.Commands.RefreshSession.Handle(r.Context(), commands.RefreshSession{Meta: a.meta(r), RefreshToken: token, Cookie: cookie})
	noStore(w)
	if err != nil {
		if cookie {
			a.clearSessionCookies(w, r)
		}
		a.fail(w, r, scopeIdentitySession, err)
		return
	}
	a.caughtUp(r.Context(), res.Position)
	if cookie {
		a.setSessionCookies(w, r, res.Token, res.ExpiresAt, res.RefreshToken, res.SessionExpiresAt)
		WriteJSON(w, http.StatusOK, cookieSessionJSON{CSRFToken: res.CSRFToken, ExpiresAt: res.ExpiresAt, SessionExpiresAt: res.SessionExpiresAt})
		return
	}
	WriteJSON(w, http.StatusOK, refreshJSON{
		AccessToken: res.Token, TokenType: "Bearer", ExpiresAt: res.ExpiresAt,
		ExpiresIn: int64(time.Until(res.ExpiresAt).Round(time.Second) / time.Second), RefreshToken: res.RefreshToken,
		SessionExpiresAt: res.SessionExpiresAt,
	})
}

// sameSiteOrigin tells whether a request's Origin, if any, is this host or an allowed CORS origin.
func (a *accountRoutes) sameSiteOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	for _, o := range a.origins {
		if o == origin {
			return true
		}
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host == r.Host
}

// sessionListJSON is one session in the lists.
type sessionListJSON struct {
	ID        string    `json:"id"`
	UserAgent string    `json:"user_agent"`
	UserIP    string    `json:"user_ip"`
	Cookie    bool      `json:"cookie"`
	Current   bool      `json:"current"`
	StartedAt time.Time `json:"started_at"`
	LastSeen  time.Time `json:"last_seen_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

func sessionsJSONOf(list []projections.Session, current string) []sessionListJSON {
	out := make([]sessionListJSON, len(list))
	for i, s := range list {
		out[i] = sessionListJSON{
			ID: s.SessionID, UserAgent: s.UserAgent, UserIP: s.IP, Cookie: s.Cookie, Current: s.SessionID == current,
			StartedAt: s.StartedAt.UTC(), LastSeen: s.LastSeen.UTC(), ExpiresAt: s.ExpiresAt.UTC(),
		}
	}
	return out
}

// mySessions is GET /api/v2/resource/sessions: the caller's open sessions, theirs marked current.
func (a *accountRoutes) mySessions(w http.ResponseWriter, r *http.Request) {
	c, _ := CallerFrom(r.Context())
	list, err := a.SessionList.ForUser(r.Context(), c.UID, a.App.Commands.RefreshSession.Now())
	if err != nil {
		writeViewError(w, r, a.log, scopeResourceSession, err)
		return
	}
	WriteJSON(w, http.StatusOK, sessionsJSONOf(list, c.SessionID))
}

// endMySession is DELETE /api/v2/resource/sessions/{id}: the caller ends one of their sessions,
// perhaps the current one (then as a sign-out, cookies cleared).
func (a *accountRoutes) endMySession(w http.ResponseWriter, r *http.Request) {
	c, _ := CallerFrom(r.Context())
	id := mux.Vars(r)["id"]
	res, err := a.App.Commands.RevokeSession.Handle(r.Context(), commands.RevokeSession{Meta: a.meta(r), UID: uidOf(c), SessionID: id})
	if err != nil {
		a.fail(w, r, scopeResourceSession, err)
		return
	}
	if id == c.SessionID && c.Cookie {
		a.clearSessionCookies(w, r)
	}
	a.caughtUp(r.Context(), res.Position)
	w.WriteHeader(http.StatusNoContent)
}

// adminEndSessions is DELETE /api/v2/admin/users/{uid}/sessions[/{id}]: an administrator ends one
// session of a user, or all of them.
func (a *accountRoutes) adminEndSessions(w http.ResponseWriter, r *http.Request) {
	v := mux.Vars(r)
	res, err := a.App.Commands.RevokeSessions.Handle(r.Context(), commands.RevokeSessions{Meta: a.meta(r), UID: domain.UserID(v["uid"]), SessionID: v["id"]})
	if err != nil {
		a.fail(w, r, scopeAdminUser, err)
		return
	}
	a.caughtUp(r.Context(), res.Position)
	w.WriteHeader(http.StatusNoContent)
}
