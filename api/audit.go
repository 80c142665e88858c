package api

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/idlog/idlog/audit"
	"github.com/idlog/idlog/eventstore"
)

// verifyTimeout bounds one verification of the whole log.
const verifyTimeout = 30 * time.Minute

// verifyAnswer is the body of GET /api/v2/admin/audit/verify: the report, and whether the log
// holds.
type verifyAnswer struct {
	OK bool `json:"ok"`
	audit.Report
}

// AuditVerifyHandler serves GET /api/v2/admin/audit/verify: it recomputes the hash chain over
// the whole log and compares it with the sealed ledger (audit.Verify), then answers 200 with the
// report: "ok", how far the sealed part reaches, and the first problem (changed, deleted,
// inserted, reordered, ledger) with its event. Requests that arrive while a verification runs
// share its result instead of reading the log again. It needs the bearer middleware and
// RequireRole(EventReaders...) in front.
func AuditVerifyHandler(store eventstore.Store, ledger *audit.Ledger, log *slog.Logger) http.Handler {
	if store == nil || ledger == nil {
		panic("api: AuditVerifyHandler needs the event store and the audit ledger")
	}
	v := &verifier{store: store, ledger: ledger}
	log = logger(log)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		run := v.start()
		select {
		case <-run.done:
		case <-r.Context().Done():
			return // the client left; the verification ends for whoever else waits
		}
		if run.err != nil {
			storeFailed(w, r, log, "admin.audit", run.err)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		WriteJSON(w, http.StatusOK, verifyAnswer{OK: run.report.OK(), Report: run.report})
	})
}

// verifier runs one verification at a time and lets every request that comes meanwhile wait for
// it.
type verifier struct {
	store  eventstore.Store
	ledger *audit.Ledger

	mu      sync.Mutex
	running *verifyRun
}

type verifyRun struct {
	done   chan struct{}
	report audit.Report
	err    error
}

func (v *verifier) start() *verifyRun {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.running != nil {
		return v.running
	}
	run := &verifyRun{done: make(chan struct{})}
	v.running = run
	go func() {
		// Not the request's context: the run serves every request waiting for it.
		ctx, cancel := context.WithTimeout(context.Background(), verifyTimeout)
		defer cancel()
		run.report, run.err = audit.Verify(ctx, v.store, v.ledger)
		v.mu.Lock()
		v.running = nil
		v.mu.Unlock()
		close(run.done)
	}()
	return run
}
