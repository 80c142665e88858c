package api

import (
	"log/slog"
	"net/http"
	"strings"
)

// Token introspection (RFC 7662): POST /api/v2/identity/introspect with token=<access token>. A
// resource server that receives idlog's access tokens asks here whether one is active now: its
// signature, expiry and session are checked, so a token of a session that ended (sign-out, ban,
// password change) is inactive at once, not at its expiry. Only resource servers may ask
// (introspect_auth.go); an unknown token is just inactive.

// introspection is RFC 7662's answer; an inactive token gets {"active": false} only.
type introspection struct {
	Active    bool   `json:"active"`
	Sub       string `json:"sub,omitempty"`
	SessionID string `json:"sid,omitempty"`
	Role      string `json:"role,omitempty"`
	Level     *int   `json:"level,omitempty"`
	Email     string `json:"email,omitempty"`
	TokenType string `json:"token_type,omitempty"`
	Exp       int64  `json:"exp,omitempty"`
	Iat       int64  `json:"iat,omitempty"`
}

func (a *accountRoutes) introspect(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	if !a.introspectionAllowed(w, r) {
		return
	}
	p, ok := a.params(w, r)
	if !ok {
		return
	}
	token := strings.TrimSpace(p.str("token"))
	if token == "" {
		WriteError(w, http.StatusBadRequest, "identity.introspect.missing_token")
		return
	}
	claims, err := a.authn.tokens.Verify(token)
	if err != nil {
		WriteJSON(w, http.StatusOK, introspection{})
		return
	}
	s, open, err := a.authn.sessions.Open(r.Context(), claims.UserID, claims.SessionID)
	if err != nil {
		a.log.LogAttrs(r.Context(), slog.LevelError, "session check failed",
			slog.String("request_id", RequestID(r.Context())), slog.Any("error", err))
		WriteError(w, http.StatusServiceUnavailable, "server.unavailable")
		return
	}
	if !open {
		WriteJSON(w, http.StatusOK, introspection{})
		return
	}
	level := s.Level
	WriteJSON(w, http.StatusOK, introspection{
		Active: true, Sub: claims.UserID, SessionID: claims.SessionID, Role: s.Role, Level: &level, Email: s.Email,
		TokenType: "Bearer", Exp: claims.ExpiresAt.Unix(), Iat: claims.IssuedAt.Unix(),
	})
}
