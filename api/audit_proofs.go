package api

import (
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/google/uuid"

	"github.com/idlog/idlog/audit"
)

const scopeAdminAudit = "admin.audit"

// checkpointAnswer is the body of GET /api/v2/admin/audit/checkpoint: the latest signed
// checkpoint as its note (what an auditor keeps and checks with the audit public key), and what
// it states.
type checkpointAnswer struct {
	Checkpoint string     `json:"checkpoint"`
	TreeSize   uint64     `json:"tree_size"`
	Root       audit.Hash `json:"root"`
	Chain      audit.Hash `json:"chain"`
	SealedAt   string     `json:"sealed_at"`
}

// AuditCheckpointHandler serves GET /api/v2/admin/audit/checkpoint: the latest checkpoint signed
// with the audit key, 404 admin.audit.no_checkpoint before the sealer signed one. It needs the
// bearer middleware and RequireRole(EventReaders...) in front.
func AuditCheckpointHandler(ledger *audit.Ledger, log *slog.Logger) http.Handler {
	if ledger == nil {
		panic("api: AuditCheckpointHandler needs the audit ledger")
	}
	log = logger(log)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cp, ok, err := ledger.LastCheckpoint(r.Context())
		if err != nil {
			storeFailed(w, r, log, scopeAdminAudit, err)
			return
		}
		if !ok || cp.Note == "" {
			WriteError(w, http.StatusNotFound, scopeAdminAudit+".no_checkpoint")
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		WriteJSON(w, http.StatusOK, checkpointAnswer{Checkpoint: cp.Note, TreeSize: cp.Ordinal, Root: cp.Root, Chain: cp.Chain,
			SealedAt: cp.SealedAt.UTC().Format("2006-01-02T15:04:05.000000Z")})
	})
}

// AuditInclusionHandler serves GET /api/v2/admin/audit/proofs/inclusion?ordinal=N&tree_size=M (or
// event_id=... instead of ordinal): the RFC 9162 inclusion proof of the event in the tree of M
// events (audit.InclusionProof). 422 admin.audit.invalid_ordinal, .invalid_tree_size when the tree
// does not reach them; 404 admin.audit.event_not_sealed for an event id the ledger does not know.
func AuditInclusionHandler(ledger *audit.Ledger, log *slog.Logger) http.Handler {
	if ledger == nil {
		panic("api: AuditInclusionHandler needs the audit ledger")
	}
	log = logger(log)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		size, okSize := positiveUintParam(q.Get("tree_size"))
		var ord uint64
		okOrd := false
		if id := q.Get("event_id"); id != "" && q.Get("ordinal") == "" {
			eid, err := uuid.Parse(id)
			if err != nil {
				WriteError(w, http.StatusUnprocessableEntity, scopeAdminAudit+".invalid_event_id")
				return
			}
			s, found, err := ledger.Find(r.Context(), eid)
			if err != nil {
				storeFailed(w, r, log, scopeAdminAudit, err)
				return
			}
			if !found {
				WriteError(w, http.StatusNotFound, scopeAdminAudit+".event_not_sealed")
				return
			}
			ord, okOrd = s.Ordinal, true
		} else {
			ord, okOrd = positiveUintParam(q.Get("ordinal"))
		}
		var bad []string
		if !okOrd {
			bad = append(bad, scopeAdminAudit+".invalid_ordinal")
		}
		if !okSize {
			bad = append(bad, scopeAdminAudit+".invalid_tree_size")
		}
		if len(bad) > 0 {
			WriteError(w, http.StatusUnprocessableEntity, bad...)
			return
		}
		p, err := ledger.InclusionProof(r.Context(), ord, size)
		if errors.Is(err, audit.ErrTreeSize) {
			code := ".invalid_tree_size"
			if ord > size {
				code = ".invalid_ordinal"
			}
			WriteError(w, http.StatusUnprocessableEntity, scopeAdminAudit+code)
			return
		}
		if err != nil {
			storeFailed(w, r, log, scopeAdminAudit, err)
			return
		}
		WriteJSON(w, http.StatusOK, p)
	})
}

// AuditConsistencyHandler serves GET /api/v2/admin/audit/proofs/consistency?from=N&to=M: the RFC
// 9162 consistency proof that the tree of M events extends the tree of N (audit.ConsistencyProof).
// 422 admin.audit.invalid_from or .invalid_to.
func AuditConsistencyHandler(ledger *audit.Ledger, log *slog.Logger) http.Handler {
	if ledger == nil {
		panic("api: AuditConsistencyHandler needs the audit ledger")
	}
	log = logger(log)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		from, okFrom := uintParam(q.Get("from"))
		to, okTo := positiveUintParam(q.Get("to"))
		var bad []string
		if !okFrom || (okTo && from > to) {
			bad = append(bad, scopeAdminAudit+".invalid_from")
		}
		if !okTo {
			bad = append(bad, scopeAdminAudit+".invalid_to")
		}
		if len(bad) > 0 {
			WriteError(w, http.StatusUnprocessableEntity, bad...)
			return
		}
		p, err := ledger.ConsistencyProof(r.Context(), from, to)
		if errors.Is(err, audit.ErrTreeSize) {
			WriteError(w, http.StatusUnprocessableEntity, scopeAdminAudit+".invalid_to")
			return
		}
		if err != nil {
			storeFailed(w, r, log, scopeAdminAudit, err)
			return
		}
		WriteJSON(w, http.StatusOK, p)
	})
}

func uintParam(s string) (uint64, bool) {
	n, err := strconv.ParseUint(s, 10, 63)
	return n, err == nil
}

func positiveUintParam(s string) (uint64, bool) {
	n, ok := uintParam(s)
	return n, ok && n > 0
}
