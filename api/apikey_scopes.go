package api

import (
	"log/slog"
	"net/http"
	"slices"
	"strings"
)

// API key scopes. Barong stores a key's scopes and enforces none of them; idlog enforces them, so
// that a key made for one purpose cannot do everything its owner can:
//   - a key without scopes reaches whatever its owner reaches (Barong's keys, unchanged);
//   - a key with scopes reaches idlog's own routes only in the sections it names: a route's
//     section is the path segment after /api/v2/ ("resource", "admin", "identity"...);
//   - at the authz endpoint (a gateway's service), a key with scopes passes only where an ACCEPT
//     permission that matches the request has a topic among its scopes.
//
// Out of scope: 401 authz.api_key_scope, as Barong refuses at its authz endpoint (a key that
// cannot reach a route is, for that route, no credential).

// sectionOf is the section of an idlog route's path: "resource" for /api/v2/resource/users/me.
func sectionOf(path string) string {
	rest, ok := strings.CutPrefix(path, "/api/v2/")
	if !ok {
		return ""
	}
	section, _, _ := strings.Cut(rest, "/")
	return section
}

// covers says whether c may reach a route or permission of topic: always for a session or a
// key without scopes.
func (c Caller) covers(topic string) bool {
	return c.APIKey == "" || len(c.Scopes) == 0 || (topic != "" && slices.Contains(c.Scopes, topic))
}

// inScope says whether c may reach r's route; if not, it has answered 401 authz.api_key_scope.
func (a *Authenticator) inScope(w http.ResponseWriter, r *http.Request, c Caller) bool {
	if c.covers(sectionOf(r.URL.Path)) {
		return true
	}
	a.log.LogAttrs(r.Context(), slog.LevelInfo, "api key out of its scopes", slog.String("request_id", RequestID(r.Context())),
		slog.String("kid", c.APIKey), slog.String("path", r.URL.Path))
	WriteError(w, http.StatusUnauthorized, "authz.api_key_scope")
	return false
}
