package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/idlog/idlog/api"
)

// do sends a request to h and returns the response and its body.
func do(t *testing.T, h http.Handler, method, path string, header http.Header) (*http.Response, string) {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	res := rec.Result()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, string(body)
}

func TestHealthz(t *testing.T) {
	t.Parallel()
	// A failing readiness check must not fail liveness.
	h := validated(t, api.NewServer(api.Options{Ready: []api.Check{{Name: "db", Check: func(context.Context) error { return errors.New("down") }}}}))
	res, body := do(t, h, http.MethodGet, "/healthz", nil)
	if res.StatusCode != http.StatusOK || body != "{\"status\":\"ok\"}\n" {
		t.Errorf("GET /healthz = %d %q, want 200 {\"status\":\"ok\"}", res.StatusCode, body)
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type = %q, want JSON", ct)
	}
}

func TestReadyz(t *testing.T) {
	t.Parallel()
	ok := func(context.Context) error { return nil }
	down := func(context.Context) error { return errors.New("connection refused") }
	tests := []struct {
		name       string
		checks     []api.Check
		wantStatus int
		wantBody   string
	}{
		{"no checks", nil, 200, `{"status":"ok"}`},
		{"all pass", []api.Check{{Name: "eventstore", Check: ok}, {Name: "nats", Check: ok}}, 200, `{"status":"ok"}`},
		{"one fails", []api.Check{{Name: "eventstore", Check: down}, {Name: "nats", Check: ok}}, 503, `{"status":"unavailable","failed":["eventstore"]}`},
		{"two fail", []api.Check{{Name: "eventstore", Check: down}, {Name: "nats", Check: ok}, {Name: "projections", Check: down}}, 503, `{"status":"unavailable","failed":["eventstore","projections"]}`},
		{"an optional one fails", []api.Check{{Name: "eventstore", Check: ok}, {Name: "nats", Check: down, Optional: true}}, 200, `{"status":"degraded","degraded":["nats"]}`},
		{"a required and an optional fail", []api.Check{{Name: "eventstore", Check: down}, {Name: "nats", Check: down, Optional: true}}, 503, `{"status":"unavailable","failed":["eventstore"],"degraded":["nats"]}`},
		{"details shown", []api.Check{{Name: "nats", Check: ok, Details: func() any { return map[string]int{"lag_events": 3} }}}, 200, `{"status":"ok","details":{"nats":{"lag_events":3}}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var logs bytes.Buffer
			h := validated(t, api.NewServer(api.Options{Ready: tt.checks, Logger: slog.New(slog.NewJSONHandler(&logs, nil))}))
			res, body := do(t, h, http.MethodGet, "/readyz", nil)
			if res.StatusCode != tt.wantStatus || strings.TrimSpace(body) != tt.wantBody {
				t.Errorf("GET /readyz = %d %s, want %d %s", res.StatusCode, body, tt.wantStatus, tt.wantBody)
			}
			if strings.Contains(tt.wantBody, "degraded") || tt.wantStatus != 200 {
				if strings.Contains(body, "refused") {
					t.Errorf("body %s shows the check's error to the client", body)
				}
				if !strings.Contains(logs.String(), `"error":"connection refused"`) {
					t.Errorf("the check's error is not logged: %s", logs.String())
				}
			}
		})
	}
}

// Checks run at once: a slow dependency does not add its latency to the others'. These two
// checks each wait for the other to start, so run one after the other they would time out.
func TestReadyzRunsChecksConcurrently(t *testing.T) {
	t.Parallel()
	a, b := make(chan struct{}), make(chan struct{})
	waitFor := func(mine, other chan struct{}) func(context.Context) error {
		return func(ctx context.Context) error {
			close(mine)
			select {
			case <-other:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	h := validated(t, api.NewServer(api.Options{Ready: []api.Check{{Name: "a", Check: waitFor(a, b)}, {Name: "b", Check: waitFor(b, a)}}}))
	if res, body := do(t, h, http.MethodGet, "/readyz", nil); res.StatusCode != http.StatusOK {
		t.Errorf("GET /readyz = %d %s, want 200", res.StatusCode, body)
	}
}

func TestErrorsForUnknownRoutes(t *testing.T) {
	t.Parallel()
	h := validated(t, api.NewServer(api.Options{}))
	tests := []struct {
		method, path string
		wantStatus   int
		wantBody     string
	}{
		{http.MethodGet, "/nope", 404, `{"errors":["route.not_found"]}`},
		{http.MethodPost, "/healthz", 405, `{"errors":["route.method_not_allowed"]}`},
	}
	for _, tt := range tests {
		res, body := do(t, h, tt.method, tt.path, nil)
		if res.StatusCode != tt.wantStatus || strings.TrimSpace(body) != tt.wantBody {
			t.Errorf("%s %s = %d %s, want %d %s", tt.method, tt.path, res.StatusCode, body, tt.wantStatus, tt.wantBody)
		}
	}
}

func TestRequestID(t *testing.T) {
	t.Parallel()
	h := validated(t, api.NewServer(api.Options{}))

	res, _ := do(t, h, http.MethodGet, "/healthz", http.Header{"X-Request-Id": {"edge-42.a_b"}})
	if got := res.Header.Get("X-Request-Id"); got != "edge-42.a_b" {
		t.Errorf("X-Request-Id = %q, want the client's edge-42.a_b", got)
	}

	seen := map[string]bool{}
	for _, sent := range []string{"", "has space", "<script>", strings.Repeat("a", 129)} {
		res, _ := do(t, h, http.MethodGet, "/healthz", http.Header{"X-Request-Id": {sent}})
		got := res.Header.Get("X-Request-Id")
		if got == "" || got == sent || seen[got] {
			t.Errorf("X-Request-Id for %q = %q, want a new unique id", sent, got)
		}
		seen[got] = true
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	// Other parts of the binary register their collectors in the same registry.
	appends := prometheus.NewCounter(prometheus.CounterOpts{Name: "idlog_test_appends_total", Help: "test"})
	reg.MustRegister(appends)
	appends.Add(3)

	h := validated(t, api.NewServer(api.Options{Metrics: reg}))
	do(t, h, http.MethodGet, "/healthz", nil)
	do(t, h, http.MethodGet, "/healthz", nil)
	do(t, h, http.MethodGet, "/users/ID123", nil)
	do(t, h, "BREW", "/healthz", nil)

	res, body := do(t, h, http.MethodGet, "/metrics", nil)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics = %d", res.StatusCode)
	}
	for _, want := range []string{
		`idlog_http_request_duration_seconds_count{method="GET",route="/healthz",status="200"} 2`,
		`idlog_http_request_duration_seconds_count{method="GET",route="unmatched",status="404"} 1`,
		`idlog_http_request_duration_seconds_count{method="OTHER",route="unmatched",status="405"} 1`,
		`idlog_test_appends_total 3`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(body, "ID123") {
		t.Error("/metrics labels a raw path")
	}
}

func TestAccessLog(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	h := validated(t, api.NewServer(api.Options{Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}))
	res, _ := do(t, h, http.MethodGet, "/nope?code=123456", http.Header{"X-Request-Id": {"req-1"}})
	if res.StatusCode != http.StatusNotFound {
		t.Fatalf("status = %d", res.StatusCode)
	}
	var entry map[string]any
	if err := json.Unmarshal(logs.Bytes(), &entry); err != nil {
		t.Fatalf("log %q: %v", logs.String(), err)
	}
	for k, want := range map[string]any{"msg": "http request", "request_id": "req-1", "route": "unmatched", "path": "/nope", "status": 404.0, "level": "INFO"} {
		if entry[k] != want {
			t.Errorf("log %s = %v, want %v", k, entry[k], want)
		}
	}
	if strings.Contains(logs.String(), "123456") {
		t.Errorf("access log shows the query: %s", logs.String())
	}
}

func TestWriteError(t *testing.T) {
	t.Parallel()
	rec := httptest.NewRecorder()
	api.WriteError(rec, http.StatusUnprocessableEntity, "identity.user.missing_email", "identity.user.weak_password")
	if rec.Code != 422 || rec.Body.String() != `{"errors":["identity.user.missing_email","identity.user.weak_password"]}`+"\n" {
		t.Errorf("WriteError = %d %s", rec.Code, rec.Body)
	}
	rec = httptest.NewRecorder()
	api.WriteError(rec, http.StatusInternalServerError)
	if rec.Body.String() != `{"errors":[]}`+"\n" {
		t.Errorf("WriteError without codes = %s, want an empty list", rec.Body)
	}
}
