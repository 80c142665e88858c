package api_test

import (
	"net/http"
	"strings"
	"testing"
)

// fuzzRoutes are the routes whose bodies the fuzzer sends: the account, label and wallet routes
// that decode a JSON or form body. A signed-in route gets a valid token, so the decoder and the
// command behind it are reached, not just the bearer check.
var fuzzRoutes = []struct {
	method, path string
	signedIn     bool
}{
	{http.MethodPost, "/api/v2/identity/users", false},
	{http.MethodPost, "/api/v2/identity/sessions", false},
	{http.MethodPost, "/api/v2/identity/users/email/confirm_code", false},
	{http.MethodPost, "/api/v2/identity/users/password/confirm_code", false},
	{http.MethodPost, "/api/v2/identity/password/validate", false},
	{http.MethodPut, "/api/v2/resource/users/me", true},
	{http.MethodPut, "/api/v2/resource/users/password", true},
	{http.MethodPut, "/api/v2/resource/users/username", true},
	{http.MethodPost, "/api/v2/resource/labels", true},
	{http.MethodPatch, "/api/v2/resource/labels/fuzz", true},
	{http.MethodPost, "/api/v2/resource/wallet/spend", true},
	{http.MethodPost, "/api/v2/resource/otp/enable", true},
}

var fuzzContentTypes = []string{
	"application/json",
	"application/x-www-form-urlencoded",
	"multipart/form-data; boundary=xYzZY",
	"text/plain",
	"",
}

// FuzzRequestDecoders sends arbitrary bodies under each content type to each route: the server
// must never panic (the recovery middleware would turn that into a 500) nor fail in any other
// way; garbage is the client's fault and gets a 4xx.
func FuzzRequestDecoders(f *testing.F) {
	for i := range fuzzRoutes {
		f.Add(uint8(i), uint8(0), []byte(`{"email":"a@example.com","password":"x","data":{"k":[1,2]}}`))
		f.Add(uint8(i), uint8(0), []byte(`{"amount":"1e400","value":null,"key":["a"]}`))
		f.Add(uint8(i), uint8(1), []byte(`email=a%40example.com&password=%ff%fe&amount=-1`))
		f.Add(uint8(i), uint8(2), []byte("--xYzZY\r\nContent-Disposition: form-data; name=\"value\"\r\n\r\nabc\r\n--xYzZY--\r\n"))
	}
	f.Add(uint8(0), uint8(0), []byte(`[`))
	f.Add(uint8(0), uint8(0), []byte(`null`))
	f.Add(uint8(5), uint8(0), []byte(`{"data":"{\"a\":"}`))
	s := newServer(f, "sqlite", serverOptions{})
	s.signUp(f, "fuzz@example.com", "")
	token := s.signIn(f, "fuzz@example.com", "")
	s.post("/api/v2/resource/labels", obj{"key": "fuzz", "value": "start"}, token).want(f, http.StatusCreated)

	f.Fuzz(func(t *testing.T, route, ct uint8, body []byte) {
		rt := fuzzRoutes[int(route)%len(fuzzRoutes)]
		rq := request{method: rt.method, path: rt.path, body: rawBody(body), header: http.Header{}}
		if c := fuzzContentTypes[int(ct)%len(fuzzContentTypes)]; c != "" {
			rq.header.Set("Content-Type", c)
		}
		if rt.signedIn {
			rq.token = token
		}
		r := s.do(rq)
		if r.status >= 500 || r.status < 200 {
			t.Fatalf("%s %s with %q body %q: %d %s", rt.method, rt.path, rq.header.Get("Content-Type"), body, r.status, r.body)
		}
		if r.status >= 300 && !strings.Contains(r.body, `"errors"`) {
			t.Fatalf("%s %s: %d without Barong's error layout: %s", rt.method, rt.path, r.status, r.body)
		}
	})
}
