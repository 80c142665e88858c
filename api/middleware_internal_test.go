package api

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// No route panics yet, so the recovery is tested on the middleware chain NewServer builds.
func TestPanicAnswers500(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	reg := prometheus.NewRegistry()
	boom := http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") })
	h := withRequestID(instrument(log, newHTTPMetrics(reg), recoverPanics(log, boom)))

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != http.StatusInternalServerError || strings.TrimSpace(rec.Body.String()) != `{"errors":["server.internal_error"]}` {
		t.Errorf("panic answered %d %s, want 500 server.internal_error", rec.Code, rec.Body)
	}
	for _, want := range []string{`"msg":"handler panicked"`, `"panic":"boom"`, `"msg":"http request"`, `"status":500`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("logs lack %s: %s", want, logs.String())
		}
	}
}
