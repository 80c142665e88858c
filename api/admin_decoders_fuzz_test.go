package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/eventstore"
)

// fuzzAdminRoutes are the admin routes that read a body or a query. {uid} is a real user, so
// the decoders and the commands behind them are reached.
var fuzzAdminRoutes = []struct{ method, path string }{
	{http.MethodGet, "/api/v2/admin/users"},
	{http.MethodPost, "/api/v2/admin/users"},
	{http.MethodPut, "/api/v2/admin/users"},
	{http.MethodPost, "/api/v2/admin/users/role"},
	{http.MethodGet, "/api/v2/admin/users/{uid}"},
	{http.MethodPut, "/api/v2/admin/users/{uid}/login"},
	{http.MethodGet, "/api/v2/admin/metrics"},
	{http.MethodGet, "/api/v2/admin/users/labels/list"},
	{http.MethodPost, "/api/v2/admin/users/labels/update"},
	{http.MethodGet, "/api/v2/admin/users/labels"},
	{http.MethodPost, "/api/v2/admin/users/labels"},
	{http.MethodPut, "/api/v2/admin/users/labels"},
	{http.MethodDelete, "/api/v2/admin/users/labels"},
	{http.MethodGet, "/api/v2/admin/levels"},
	{http.MethodPost, "/api/v2/admin/wallets/{uid}/credits"},
}

// FuzzAdminRequestDecoders sends arbitrary queries and bodies, under each content type, to each
// admin route as a superadmin: whatever comes in, the answer is never a 5xx, and every refusal is
// in Barong's layout, {"errors":["..."]} with at least one code.
func FuzzAdminRequestDecoders(f *testing.F) {
	for i := range fuzzAdminRoutes {
		f.Add(uint8(i), uint8(0), "", []byte(`{"uid":"ID0000000001","email":"a@example.com","password":"x","role":"admin","state":"banned","otp":false}`))
		f.Add(uint8(i), uint8(0), "page=2&limit=1", []byte(`{"uid":"{uid}","key":"kyc","value":"verified","scope":"private","amount":"12.5","reason":"gift"}`))
		f.Add(uint8(i), uint8(1), "key=kyc&value=verified&as_of=2025-01-01T00:00:00Z", []byte(`uid=%7Buid%7D&key=k&value=v&enabled=maybe&amount=-1e400`))
		f.Add(uint8(i), uint8(2), "limit=-1&page=99999999999999999999", []byte("--xYzZY\r\nContent-Disposition: form-data; name=\"uid\"\r\n\r\n{uid}\r\n--xYzZY--\r\n"))
	}
	f.Add(uint8(1), uint8(0), "", []byte(`[`))
	f.Add(uint8(2), uint8(0), "", []byte(`{"uid":null,"otp":"0","state":["a"]}`))
	f.Add(uint8(3), uint8(0), "", []byte(`{"uid":"{uid}","role":"superadmin\u0000"}`))
	f.Add(uint8(0), uint8(4), "%zz&email=%ff&created_from=1e99&range=a..b", []byte(nil))
	f.Add(uint8(14), uint8(0), "", []byte(`{"amount":"99999999999999999999999999","balance":"standard","reference":"\ud800"}`))

	s := newServer(f, "sqlite", serverOptions{})
	s.signUp(f, "superfuzz@example.com", "")
	super := s.signUp(f, "super-fuzz@example.com", "")
	promote(f, s, super, domain.RoleSuperAdmin)
	token := s.signIn(f, "super-fuzz@example.com", "")
	target := s.signUp(f, "target-fuzz@example.com", "")

	f.Fuzz(func(t *testing.T, route, ct uint8, query string, body []byte) {
		rt := fuzzAdminRoutes[int(route)%len(fuzzAdminRoutes)]
		path := strings.ReplaceAll(rt.path, "{uid}", target)
		req := httptest.NewRequest(rt.method, path, strings.NewReader(strings.ReplaceAll(string(body), "{uid}", target)))
		req.URL.RawQuery = query // as sent, however malformed
		if c := fuzzContentTypes[int(ct)%len(fuzzContentTypes)]; c != "" {
			req.Header.Set("Content-Type", c)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		s.h.ServeHTTP(rec, req)
		if rec.Code >= 500 || rec.Code < 200 {
			t.Fatalf("%s %s?%s with %q body %q: %d %s", rt.method, path, query, req.Header.Get("Content-Type"), body, rec.Code, rec.Body)
		}
		if rec.Code >= 300 {
			var e struct {
				Errors []string `json:"errors"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || len(e.Errors) == 0 || e.Errors[0] == "" {
				t.Fatalf("%s %s: %d without Barong's error layout: %s", rt.method, path, rec.Code, rec.Body)
			}
		}
	})
}

// promote makes uid's role to, as an administrator's command would (see server.promote), for a
// fuzz target, which has no *testing.T at setup.
func promote(tb testing.TB, s *server, uid string, to domain.Role) {
	tb.Helper()
	data, _ := json.Marshal(domain.RoleChanged{From: domain.RoleMember, To: to})
	_, err := s.store.Append(context.Background(), eventstore.Append{
		Stream: domain.UserID(uid).Stream(), Expected: eventstore.Any,
		Events: []eventstore.NewEvent{{Type: "RoleChanged", SchemaVersion: 1, Data: data, Metadata: eventstore.Metadata{ActorUID: eventstore.ActorSystem}}},
	})
	if err != nil {
		tb.Fatal(err)
	}
}
