package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/idlog/idlog/api"
	"github.com/idlog/idlog/commands"
	"github.com/idlog/idlog/domain"
)

// The contract: api/openapi.yaml and the router agree both ways, and the answers of the HTTP
// tests validate against the document. The test servers (newServer, newViewsServer) wrap their
// handler in validated, so every answer the account, admin and read-model tests get is checked
// against the document: status listed for its operation, body and headers as described.

type contract struct {
	doc    *openapi3.T
	router routers.Router

	mu   sync.Mutex
	seen map[string]int // answers checked, by "METHOD /path status"
}

// How often an answer of a kind is validated in full: its first fullFirst, then one in fullEvery.
const fullFirst, fullEvery = 5, 25

// count records one more answer of kind and returns how many there were.
func (c *contract) count(kind string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seen[kind]++
	return c.seen[kind]
}

// checkErrorCodes checks that the error codes of an answer are the ones the document lists for
// its status: each code is written in the answer's description, whole or as `<scope>.<reason>`;
// `<scope>.missing_<field>` and `<scope>.invalid_<field>` stand for every field.
func checkErrorCodes(route *routers.Route, r *http.Request, status int, body []byte) error {
	if status < 400 {
		return nil
	}
	var e struct{ Errors []string }
	if json.Unmarshal(body, &e) != nil {
		return nil // the schema check reports a body that is not an error
	}
	resp := route.Operation.Responses.Status(status)
	if resp == nil || resp.Value == nil || resp.Value.Description == nil {
		return nil // the status check reports it
	}
	listed := *resp.Value.Description
	for _, code := range e.Errors {
		reason := code[strings.LastIndex(code, ".")+1:]
		switch {
		case strings.Contains(listed, "`"+code+"`"), strings.Contains(listed, "`<scope>."+reason+"`"):
		case strings.HasPrefix(reason, "missing_") && strings.Contains(listed, "`<scope>.missing_<field>`"):
		case strings.HasPrefix(reason, "invalid_") && strings.Contains(listed, "`<scope>.invalid_<field>`"):
		default:
			return fmt.Errorf("%s %s (%s) answered %d %s, a code its description does not list: %q",
				r.Method, r.URL.Path, route.Operation.OperationID, status, code, listed)
		}
	}
	return nil
}

// checkStatusAndType is the quick check: the operation lists the status, and the body, if any,
// has a media type the document gives for it.
func checkStatusAndType(route *routers.Route, r *http.Request, status int, header http.Header, body []byte) error {
	resp := route.Operation.Responses.Status(status)
	if resp == nil {
		resp = route.Operation.Responses.Default()
	}
	if resp == nil {
		return fmt.Errorf("%s %s (%s) answered %d, a status the document does not list", r.Method, r.URL.Path, route.Operation.OperationID, status)
	}
	if len(body) == 0 || r.Method == http.MethodHead {
		return nil
	}
	mt, _, _ := mime.ParseMediaType(header.Get("Content-Type"))
	if resp.Value.Content.Get(mt) == nil {
		return fmt.Errorf("%s %s (%s) answered %d as %q, a media type the document does not give", r.Method, r.URL.Path, route.Operation.OperationID, status, mt)
	}
	return nil
}

var loadContract = sync.OnceValues(func() (*contract, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(api.OpenAPI())
	if err != nil {
		return nil, fmt.Errorf("load the OpenAPI document: %w", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("the OpenAPI document is not valid: %w", err)
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("route the OpenAPI document: %w", err)
	}
	return &contract{doc: doc, router: router, seen: map[string]int{}}, nil
})

func init() {
	// NDJSON answers (the admin event routes) validate as the array of their lines.
	openapi3filter.RegisterBodyDecoder("application/x-ndjson",
		func(body io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
			out := []any{}
			sc := bufio.NewScanner(body)
			sc.Buffer(nil, 1<<20)
			for sc.Scan() {
				if len(bytes.TrimSpace(sc.Bytes())) == 0 {
					continue
				}
				var v any
				if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
					return nil, err
				}
				out = append(out, v)
			}
			return out, sc.Err()
		})
}

func mustContract(t testing.TB) *contract {
	t.Helper()
	c, err := loadContract()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// validated checks every answer of h against the OpenAPI document, failing t on a mismatch.
func validated(t testing.TB, h http.Handler) http.Handler {
	c := mustContract(t)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tee := &teeWriter{ResponseWriter: w}
		h.ServeHTTP(tee, r)
		if err := c.check(r, tee.status, w.Header(), tee.body.Bytes()); err != nil {
			t.Errorf("contract: %v", err)
		}
	})
}

// teeWriter passes an answer through and keeps a copy of its status and body.
type teeWriter struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (w *teeWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *teeWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.body.Write(p)
	return w.ResponseWriter.Write(p)
}

func (w *teeWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *teeWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// check validates one answer. An answer to a route the document does not have is an error,
// unless the router refused it too (route.not_found, route.method_not_allowed): tests probe
// unknown routes on purpose.
func (c *contract) check(r *http.Request, status int, header http.Header, body []byte) error {
	if status == 0 {
		status = http.StatusOK
	}
	if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
		return c.checkPreflight(r, status, body)
	}
	find := r
	if r.Method == http.MethodHead {
		// HEAD is GET without the body; the document lists GET only.
		find = r.Clone(r.Context())
		find.Method = http.MethodGet
	}
	route, params, err := c.router.FindRoute(find)
	if err != nil {
		var e struct{ Errors []string }
		_ = json.Unmarshal(body, &e)
		if status == http.StatusNotFound && slices.Equal(e.Errors, []string{"route.not_found"}) ||
			status == http.StatusMethodNotAllowed && slices.Equal(e.Errors, []string{"route.method_not_allowed"}) {
			return nil
		}
		return fmt.Errorf("%s %s answered %d, but the document has no such operation (%v)", r.Method, r.URL.Path, status, err)
	}
	// Checking a body compiles its schema every time (kin-openapi keeps no compiled JSON Schema
	// 2020-12 validator), some milliseconds each: each kind of answer (operation and status) is
	// validated in full the first times it is seen and one time in fullEvery after, and every
	// answer's status and media type are checked.
	if err := checkErrorCodes(route, r, status, body); err != nil {
		return err
	}
	kind := fmt.Sprintf("%s %s %d", route.Method, route.Path, status)
	if seen := c.count(kind); seen > fullFirst && seen%fullEvery != 0 {
		return checkStatusAndType(route, r, status, header, body)
	}

	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: find, PathParams: params, Route: route},
		Status:                 status,
		Header:                 header,
		Options: &openapi3filter.Options{
			IncludeResponseStatus: true, // a status the operation does not list is an error
			MultiError:            true,
			ExcludeResponseBody:   r.Method == http.MethodHead,
		},
	}
	in.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(r.Context(), in); err != nil {
		shown := string(body)
		if len(shown) > 600 {
			shown = shown[:600] + "..."
		}
		return fmt.Errorf("%s %s (%s) answered %d %s: %v", r.Method, r.URL.Path, route.Operation.OperationID, status, shown, err)
	}
	return nil
}

// checkPreflight checks a CORS preflight, which the CORS layer answers before routing (the
// document says so in its description and lists no OPTIONS): the method it asks for must be
// documented on its path, and the answer is 204 without a body, whether the origin is allowed
// (with Access-Control-* headers) or not (without).
func (c *contract) checkPreflight(r *http.Request, status int, body []byte) error {
	asked := r.Clone(r.Context())
	asked.Method = strings.ToUpper(r.Header.Get("Access-Control-Request-Method"))
	if asked.Method == http.MethodHead {
		asked.Method = http.MethodGet
	}
	if _, _, err := c.router.FindRoute(asked); err != nil {
		return fmt.Errorf("preflight of %s %s: the document has no such operation (%v)", asked.Method, r.URL.Path, err)
	}
	if status != http.StatusNoContent || len(body) != 0 {
		return fmt.Errorf("preflight of %s %s answered %d %q, want 204 without a body", asked.Method, r.URL.Path, status, body)
	}
	return nil
}

// TestMain reports, with IDLOG_CONTRACT_COVERAGE=1, which documented operations no test's answer
// exercised, and which statuses were validated.
func TestMain(m *testing.M) {
	code := m.Run()
	if os.Getenv("IDLOG_CONTRACT_COVERAGE") != "" {
		reportCoverage()
	}
	os.Exit(code)
}

func reportCoverage() {
	c, err := loadContract()
	if err != nil {
		return
	}
	seen := map[string][]string{}
	answers := 0
	c.mu.Lock()
	for kind, n := range c.seen {
		i := strings.LastIndex(kind, " ")
		seen[kind[:i]] = append(seen[kind[:i]], kind[i+1:])
		answers += n
	}
	kinds := len(c.seen)
	c.mu.Unlock()
	var ops, missing []string
	for path, item := range c.doc.Paths.Map() {
		for method := range item.Operations() {
			op := method + " " + path
			ops = append(ops, op)
			if seen[op] == nil {
				missing = append(missing, op)
			}
		}
	}
	slices.Sort(missing)
	fmt.Printf("contract coverage: %d answers checked, of %d operations out of %d, %d (operation, status) kinds\n",
		answers, len(ops)-len(missing), len(ops), kinds)
	for _, op := range missing {
		fmt.Printf("  not exercised: %s\n", op)
	}
}

func TestOpenAPIDocumentIsValid31(t *testing.T) {
	t.Parallel()
	c := mustContract(t)
	if !c.doc.IsOpenAPI31OrLater() {
		t.Fatalf("openapi %q, want 3.1", c.doc.OpenAPI)
	}
	if c.doc.Components.SecuritySchemes["bearer"] == nil {
		t.Fatal("no bearer security scheme")
	}
	// Every operation has an id (the generated client and gateways name them by it) and says
	// what it answers when the server fails or is away.
	ids := map[string]string{}
	for path, item := range c.doc.Paths.Map() {
		for method, op := range item.Operations() {
			where := method + " " + path
			if op.OperationID == "" {
				t.Errorf("%s: no operationId", where)
			} else if other, ok := ids[op.OperationID]; ok {
				t.Errorf("%s: operationId %q is %s's too", where, op.OperationID, other)
			}
			ids[op.OperationID] = where
			for _, status := range []int{http.StatusInternalServerError, http.StatusServiceUnavailable} {
				if op.Responses.Status(status) == nil {
					t.Errorf("%s: no %d answer", where, status)
				}
			}
		}
	}
}

// Signed-in operations accept the cookie session as well as the bearer token, and each one that
// changes something lists the 403 an unsafe cookie request without its CSRF token gets; the
// security schemes name the cookies and header the code reads.
func TestOpenAPISignedInOperationsTakeCookieSessions(t *testing.T) {
	t.Parallel()
	c := mustContract(t)
	schemes := c.doc.Components.SecuritySchemes
	for name, want := range map[string][2]string{
		"cookie": {"cookie", api.AccessCookie}, "csrf": {"header", api.CSRFHeader}, "refresh": {"cookie", api.RefreshCookie},
	} {
		s := schemes[name]
		if s == nil || s.Value.Type != "apiKey" || s.Value.In != want[0] || s.Value.Name != want[1] {
			t.Errorf("security scheme %q = %+v, want an apiKey in %s named %s", name, s, want[0], want[1])
		}
	}
	if b := schemes["bearer"]; b == nil || b.Value.Scheme != "bearer" || b.Value.BearerFormat != "JWT" {
		t.Errorf("security scheme bearer = %+v, want http bearer JWT", b)
	}
	signedIn := 0
	for path, item := range c.doc.Paths.Map() {
		for method, op := range item.Operations() {
			if op.Security == nil || !slices.ContainsFunc(*op.Security, func(r openapi3.SecurityRequirement) bool { return r["bearer"] != nil }) {
				continue
			}
			signedIn++
			where := method + " " + path
			safe := method == http.MethodGet
			wantCookie := func(r openapi3.SecurityRequirement) bool {
				_, cookie := r["cookie"]
				_, csrf := r["csrf"]
				return cookie && len(r) == 1 && safe || cookie && csrf && len(r) == 2 && !safe
			}
			if !slices.ContainsFunc(*op.Security, wantCookie) {
				t.Errorf("%s: security %v, want the cookie session too (with csrf on an unsafe method)", where, *op.Security)
			}
			if safe {
				continue
			}
			forbidden := op.Responses.Status(http.StatusForbidden)
			if forbidden == nil || forbidden.Value.Description == nil || !strings.Contains(*forbidden.Value.Description, "`authz.invalid_csrf_token`") {
				t.Errorf("%s: no 403 listing `authz.invalid_csrf_token`", where)
			}
		}
	}
	if signedIn < 40 {
		t.Fatalf("%d signed-in operations: is the bearer requirement still spelt [{bearer: []}, ...]?", signedIn)
	}
}

// The document lists exactly the routes and methods the router serves: a route added to the code
// without the document, or documented but not served, fails here.
func TestOpenAPIAndRouterAgree(t *testing.T) {
	t.Parallel()
	c := mustContract(t)
	s := newServer(t, "sqlite", serverOptions{})
	served := map[api.Route]bool{}
	for _, r := range api.Routes(s.raw) {
		switch r.Method {
		case "":
			t.Errorf("%s is served for any method: give it Methods(...)", r.Path)
		case http.MethodHead:
			// Checked against GET below.
		default:
			served[r] = true
		}
	}
	if len(served) < 50 {
		t.Fatalf("the router of the test server serves %d routes: is it wired as idlog serve wires it?", len(served))
	}
	// HEAD goes with GET, both ways, so the document lists GET only.
	heads := map[string]bool{}
	for _, r := range api.Routes(s.raw) {
		if r.Method == http.MethodHead {
			heads[r.Path] = true
			if !served[api.Route{Method: http.MethodGet, Path: r.Path}] {
				t.Errorf("HEAD %s is served without GET", r.Path)
			}
		}
	}
	documented := map[api.Route]bool{}
	for path, item := range c.doc.Paths.Map() {
		for method := range item.Operations() {
			documented[api.Route{Method: method, Path: path}] = true
		}
	}
	for r := range served {
		if r.Method == http.MethodGet && !heads[r.Path] {
			t.Errorf("GET %s is served without HEAD", r.Path)
		}
		if !documented[r] {
			t.Errorf("%s %s is served but not in api/openapi.yaml", r.Method, r.Path)
		}
	}
	for r := range documented {
		if !served[r] {
			t.Errorf("%s %s is in api/openapi.yaml but not served", r.Method, r.Path)
		}
	}
}

// GET /api/v2/openapi.json serves the document kept in the repository, as JSON.
func TestOpenAPIServed(t *testing.T) {
	t.Parallel()
	h := validated(t, api.NewServer(api.Options{}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v2/openapi.json", nil))
	if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
		t.Fatalf("GET /api/v2/openapi.json: %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	var served map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &served); err != nil {
		t.Fatal(err)
	}
	if served["openapi"] != "3.1.0" {
		t.Fatalf("openapi %v", served["openapi"])
	}
	paths, _ := served["paths"].(map[string]any)
	for _, p := range []string{"/api/v2/identity/sessions", "/api/v2/resource/users/me", "/api/v2/admin/users/{uid}"} {
		if _, ok := paths[p]; !ok {
			t.Errorf("served document lacks %s", p)
		}
	}
	if !bytes.Equal(bytes.TrimSpace(rec.Body.Bytes()), api.OpenAPI()) {
		t.Fatal("served document differs from api.OpenAPI()")
	}
}

// The validator catches what it should: an answer outside the document fails.
func TestContractCatchesMismatches(t *testing.T) {
	t.Parallel()
	shared := mustContract(t)
	// Its own count of answers, so that every case here is validated in full.
	c := &contract{doc: shared.doc, router: shared.router, seen: map[string]int{}}
	get := func(path string) *http.Request { return httptest.NewRequest(http.MethodGet, path, nil) }
	post := func(path string) *http.Request { return httptest.NewRequest(http.MethodPost, path, nil) }
	put := func(path string) *http.Request { return httptest.NewRequest(http.MethodPut, path, nil) }
	preflight := func(path, method string) *http.Request {
		r := httptest.NewRequest(http.MethodOptions, path, nil)
		r.Header.Set("Origin", "https://app.example.com")
		r.Header.Set("Access-Control-Request-Method", method)
		return r
	}
	json := http.Header{"Content-Type": {"application/json; charset=utf-8"}}
	for _, tc := range []struct {
		name   string
		req    *http.Request
		status int
		body   string
		ok     bool
	}{
		{"documented answer", get("/api/v2/identity/ping"), 200, `{"ping":"pong"}`, true},
		{"wrong body", get("/api/v2/identity/ping"), 200, `{"ping":1}`, false},
		{"status not listed", get("/api/v2/identity/ping"), 418, `{"errors":["x.y"]}`, false},
		{"error without errors", get("/api/v2/resource/users/me"), 401, `{"error":"no"}`, false},
		{"error code not stable", get("/api/v2/resource/users/me"), 401, `{"errors":["Not Allowed"]}`, false},
		{"error code listed", get("/api/v2/resource/users/me"), 401, `{"errors":["authz.missing_token"]}`, true},
		{"error code not listed for its status", get("/api/v2/resource/users/me"), 401, `{"errors":["resource.user.email_taken"]}`, false},
		{"field code listed by its pattern", get("/api/v2/admin/users"), 422, `{"errors":["admin.user.invalid_level"]}`, true},
		{"user without uid", get("/api/v2/resource/users/me"), 200, `{"email":"a@example.com"}`, false},
		{"undocumented route", get("/api/v2/nowhere"), 200, `{}`, false},
		{"unknown route refused", get("/api/v2/nowhere"), 404, `{"errors":["route.not_found"]}`, true},
		{"preflight of a documented operation", preflight("/api/v2/resource/users/me", "PUT"), 204, ``, true},
		{"preflight of an undocumented method", preflight("/api/v2/resource/users/me", "PATCH"), 204, ``, false},
		{"preflight answered with a body", preflight("/api/v2/resource/users/me", "PUT"), 200, `{}`, false},
		{"refresh answer", post("/api/v2/identity/sessions/refresh"), 200, `{"access_token":"a","token_type":"Bearer","expires_at":"2026-01-01T00:00:00Z","expires_in":1,"refresh_token":"r","session_expires_at":"2026-01-01T00:00:00Z"}`, true},
		{"refresh answer without its refresh token", post("/api/v2/identity/sessions/refresh"), 200, `{"access_token":"a","token_type":"Bearer","expires_at":"2026-01-01T00:00:00Z","expires_in":1,"session_expires_at":"2026-01-01T00:00:00Z"}`, false},
		{"cookie refresh answer", post("/api/v2/identity/sessions/refresh"), 200, `{"csrf_token":"c","expires_at":"2026-01-01T00:00:00Z","session_expires_at":"2026-01-01T00:00:00Z"}`, true},
		{"reused refresh token listed", post("/api/v2/identity/sessions/refresh"), 401, `{"errors":["identity.session.refresh_token_reused"]}`, true},
		{"CSRF refusal listed for a signed-in change", put("/api/v2/resource/users/me"), 403, `{"errors":["authz.invalid_csrf_token"]}`, true},
		{"CSRF refusal not listed for sign-in", post("/api/v2/identity/sessions"), 403, `{"errors":["authz.invalid_csrf_token"]}`, false},
	} {
		err := c.check(tc.req, tc.status, json, []byte(tc.body))
		if (err == nil) != tc.ok {
			t.Errorf("%s: error %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

// The routes no other HTTP test reaches, through the validating server: the events' keys, a new
// email code, and what administrators did.
func TestRoutesOnlyTheContractReaches(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, s *server) {
		var keys struct {
			Keys []struct{ Kty, Crv, Alg string }
		}
		s.get("/.well-known/events-jwks.json", "").want(t, http.StatusOK).json(t, &keys)
		if len(keys.Keys) != 1 || keys.Keys[0].Kty != "OKP" || keys.Keys[0].Alg != "EdDSA" {
			t.Fatalf("events JWKS = %+v", keys)
		}

		s.signUp(t, "codes@example.com", "")
		first := s.mail.last(t, commands.NotifyEmailConfirmation, "codes@example.com")
		if r := s.post("/api/v2/identity/users/email/generate_code", obj{"email": "codes@example.com"}, "").want(t, http.StatusCreated); strings.TrimSpace(r.body) != "{}" {
			t.Fatalf("generate_code = %s", r.body)
		}
		if again := s.mail.last(t, commands.NotifyEmailConfirmation, "codes@example.com"); again == first {
			t.Fatal("generate_code sent no new code")
		}
		s.post("/api/v2/identity/users/email/generate_code", obj{}, "").want(t, http.StatusUnprocessableEntity, "identity.user.missing_email")

		_, boss := s.staff(t, "boss", domain.RoleSuperAdmin)
		member, _ := s.staff(t, "clerk", domain.RoleMember)
		s.post("/api/v2/admin/users/role", obj{"uid": member, "role": "support"}, boss).want(t, http.StatusCreated)
		s.caughtUp(t)
		type row struct {
			TargetUID string `json:"target_uid"`
		}
		var rows []row
		s.get("/api/v2/admin/activities/admin", boss).want(t, http.StatusOK).json(t, &rows)
		if !slices.ContainsFunc(rows, func(r row) bool { return r.TargetUID == member }) {
			t.Fatalf("admin activities = %+v, want the role change of %s", rows, member)
		}
		s.get("/api/v2/admin/activities/admin?page=0", boss).want(t, http.StatusUnprocessableEntity, "admin.activity.invalid_page")
	})
}
