package api_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// Text that is not valid UTF-8, or holds NUL, is refused with 422 where the request is decoded,
// and appends nothing: before, PUT /users/me with 0xFF inside data was stored as is on SQLite and
// answered 500 on PostgreSQL (pq 22021).
func TestInvalidTextNeverEntersTheLog(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, s *server) {
		s.signUp(t, "text@example.com", "")
		token := s.signIn(t, "text@example.com", "")
		put := func(body any) response {
			return s.do(request{method: http.MethodPut, path: "/api/v2/resource/users/me", token: token, body: body})
		}
		before := len(s.events(t))
		for name, body := range map[string]any{
			"0xFF inside data, JSON":       rawBody("{\"data\":{\"name\":\"\xff\"}}"),
			"0xFF inside data as a string": rawBody("{\"data\":\"{\\\"name\\\":\\\"\xff\\\"}\"}"),
			"\\u0000 inside data":          rawBody(`{"data":{"name":"a\u0000b"}}`),
			"lone surrogate inside data":   rawBody(`{"data":{"name":"\udfff"}}`),
			"0xFF in a form":               url.Values{"data": {"{\"name\":\"\xff\"}"}},
			"NUL in a form":                url.Values{"data": {"{\"name\":\"a\x00\"}"}},
			"0xFF in a form field's name":  url.Values{"data\xff": {"{}"}},
		} {
			if r := put(body); r.status != http.StatusUnprocessableEntity || strings.TrimSpace(r.body) != `{"errors":["request.invalid_utf8"]}` {
				t.Errorf("%s: %d %s, want 422 request.invalid_utf8", name, r.status, r.body)
			}
		}
		if after := len(s.events(t)); after != before {
			t.Errorf("refused requests appended %d events", after-before)
		}
		// Text beyond ASCII is fine, and so is an escaped backslash before u0000.
		put(rawBody(`{"data":{"name":"Zoë 😀 \\u0000"}}`)).want(t, http.StatusOK)
		if after := len(s.events(t)); after != before+1 {
			t.Errorf("a valid change appended %d events, want 1", after-before)
		}
		// A user agent is only informative: Latin-1 bytes (which HTTP allows) are mended, not refused.
		s.do(request{method: http.MethodPut, path: "/api/v2/resource/users/me", token: token, body: obj{"data": obj{"n": 2}},
			header: http.Header{"User-Agent": {"Navigateur \xe9"}}}).want(t, http.StatusOK)
		events := s.events(t)
		if ua := events[len(events)-1].Metadata.UserAgent; ua != "Navigateur \uFFFD" {
			t.Errorf("user agent stored as %q, want it mended", ua)
		}
	})
}
