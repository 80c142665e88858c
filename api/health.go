package api

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// readyTimeout bounds one /readyz probe, so a hung dependency answers 503 instead of hanging the
// orchestrator's probe.
const readyTimeout = 3 * time.Second

type status struct {
	Status string   `json:"status"`
	Failed []string `json:"failed,omitempty"`
}

// healthz is liveness: the process serves HTTP. It checks no dependency, so a database outage
// does not get the process restarted.
func healthz(w http.ResponseWriter, _ *http.Request) {
	WriteJSON(w, http.StatusOK, status{Status: "ok"})
}

// readyz runs every check at once and answers 503 naming the failed ones. Their errors go to the
// log, not to the client.
func readyz(log *slog.Logger, checks []Check) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		errs := make([]error, len(checks))
		var wg sync.WaitGroup
		for i, c := range checks {
			wg.Go(func() { errs[i] = c.Check(ctx) })
		}
		wg.Wait()

		var failed []string
		for i, err := range errs {
			if err != nil {
				failed = append(failed, checks[i].Name)
				log.LogAttrs(r.Context(), slog.LevelWarn, "readiness check failed",
					slog.String("check", checks[i].Name), slog.Any("error", err),
					slog.String("request_id", RequestID(r.Context())))
			}
		}
		if failed != nil {
			WriteJSON(w, http.StatusServiceUnavailable, status{Status: "unavailable", Failed: failed})
			return
		}
		WriteJSON(w, http.StatusOK, status{Status: "ok"})
	})
}
