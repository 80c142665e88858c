package api

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/rs/cors"
)

// CORS: browser apps on other origins may call the API, with credentials (the session cookie),
// from the origins of an allowlist only. A listed origin's preflight is answered 204 with the
// methods and headers the API takes; any other origin gets no Access-Control-* header at all, so
// the browser keeps its answers from the page. The allowed origin is echoed, never "*".

// corsAllowedHeaders are the request headers the API reads.
var corsAllowedHeaders = []string{"Authorization", "Content-Type", CSRFHeader, "Idempotency-Key", RequestIDHeader}

// corsExposedHeaders are the answer headers a page may read.
var corsExposedHeaders = []string{"Total", "Page", "Per-Page", "Retry-After", IdempotentReplayedHeader, RequestIDHeader}

// CheckOrigin reports whether o may be listed in the CORS allowlist: scheme and host, with an
// optional port, and nothing else; "*" and "null" may not, as they would give credentials to any
// page.
func CheckOrigin(o string) bool {
	u, err := url.Parse(o)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" && u.User == nil &&
		u.Path == "" && u.RawQuery == "" && u.Fragment == "" && !strings.Contains(o, "*") && o == u.Scheme+"://"+u.Host
}

// withCORS wraps next in the CORS handler of the allowlist; with an empty list it is next alone
// (same-origin only). An origin CheckOrigin refuses is a wiring mistake and panics.
func withCORS(origins []string, next http.Handler) http.Handler {
	if len(origins) == 0 {
		return next
	}
	for _, o := range origins {
		if !CheckOrigin(o) {
			panic("api: CORS origin " + o + " is not scheme://host[:port]")
		}
	}
	return cors.New(cors.Options{
		AllowedOrigins:   origins,
		AllowedMethods:   []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete},
		AllowedHeaders:   corsAllowedHeaders,
		ExposedHeaders:   corsExposedHeaders,
		AllowCredentials: true,
		MaxAge:           600,
	}).Handler(next)
}
