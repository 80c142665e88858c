package api_test

import (
	"net/http"
	"net/url"
	"testing"
)

func TestIntrospection(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, s *server) {
		const path = "/api/v2/identity/introspect"
		uid := s.signUp(t, "ann@example.com", "")
		tok := s.signIn(t, "ann@example.com", "")
		var out struct {
			Active         bool
			Sub, Sid, Role string
			Exp            int64
			TokenType      string `json:"token_type"`
		}
		s.post(path, url.Values{"token": {tok}}, "").want(t, http.StatusOK).json(t, &out)
		if !out.Active || out.Sub != uid || out.Sid == "" || out.Role != "member" || out.Exp == 0 || out.TokenType != "Bearer" {
			t.Fatalf("active token: %+v", out)
		}
		out = struct {
			Active         bool
			Sub, Sid, Role string
			Exp            int64
			TokenType      string `json:"token_type"`
		}{}
		s.post(path, url.Values{"token": {tok + "x"}}, "").want(t, http.StatusOK).json(t, &out)
		if out.Active || out.Sub != "" {
			t.Fatalf("forged token: %+v", out)
		}
		s.post(path, obj{}, "").want(t, http.StatusBadRequest, "identity.introspect.missing_token")

		// Signed out: inactive at once, though the token has not expired.
		s.send(http.MethodDelete, "/api/v2/identity/sessions", nil, tok).want(t, http.StatusNoContent)
		r := s.post(path, obj{"token": tok}, "").want(t, http.StatusOK)
		if r.body != `{"active":false}`+"\n" && r.body != `{"active":false}` {
			t.Fatalf("signed-out token: %s", r.body)
		}
	})
}
