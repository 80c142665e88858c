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
	Status   string         `json:"status"`
	Failed   []string       `json:"failed,omitempty"`
	Degraded []string       `json:"degraded,omitempty"`
	Details  map[string]any `json:"details,omitempty"`
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

		st := status{Status: "ok"}
		for i, err := range errs {
			c := checks[i]
			if c.Details != nil {
				if st.Details == nil {
					st.Details = map[string]any{}
				}
				st.Details[c.Name] = c.Details()
			}
			if err == nil {
				continue
			}
			if c.Optional {
				st.Degraded = append(st.Degraded, c.Name)
			} else {
				st.Failed = append(st.Failed, c.Name)
			}
			log.LogAttrs(r.Context(), slog.LevelWarn, "readiness check failed",
				slog.String("check", c.Name), slog.Bool("optional", c.Optional), slog.Any("error", err),
				slog.String("request_id", RequestID(r.Context())))
		}
		switch {
		case st.Failed != nil:
			st.Status = "unavailable"
			WriteJSON(w, http.StatusServiceUnavailable, st)
		case st.Degraded != nil:
			st.Status = "degraded"
			WriteJSON(w, http.StatusOK, st)
		default:
			WriteJSON(w, http.StatusOK, st)
		}
	})
}
