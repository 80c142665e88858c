package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/idlog/idlog/audit"
	"github.com/idlog/idlog/commands"
	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/eventstore"
)

// An auditor takes the latest signed checkpoint, an inclusion proof and a consistency proof from
// the HTTP API and checks them with the audit public key alone.
func TestAuditProofRoutes(t *testing.T) {
	t.Parallel()
	h, app, store, ledger := newViewsServerParts(t)
	ctx := context.Background()
	if _, err := app.Commands.RegisterUser.Handle(ctx, commands.RegisterUser{
		Meta: commands.Meta{ActorUID: "system"}, Email: "audrey@example.com", Password: password, Role: domain.RoleAuditor, TrustEmail: true,
	}); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		if rec := serveJSON(t, h, http.MethodPost, "/api/v2/identity/users", "", map[string]string{"email": fmt.Sprintf("m%d@example.com", i), "password": password}); rec.Code != http.StatusCreated {
			t.Fatalf("sign-up: %d %s", rec.Code, rec.Body)
		}
	}
	rec := serveJSON(t, h, http.MethodPost, "/api/v2/identity/sessions", "", map[string]string{"email": "audrey@example.com", "password": password})
	var session struct {
		AccessToken string `json:"access_token"`
	}
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &session) != nil {
		t.Fatalf("sign-in: %d %s", rec.Code, rec.Body)
	}
	auditor := session.AccessToken
	if rec := serveJSON(t, h, http.MethodGet, "/api/v2/admin/audit/checkpoint", auditor, nil); rec.Code != http.StatusNotFound || !containsCode(rec.Body.Bytes(), "admin.audit.no_checkpoint") {
		t.Fatalf("checkpoint before sealing: %d %s", rec.Code, rec.Body)
	}

	skey, vkey, err := audit.NewAuditKey("idlog-audit")
	if err != nil {
		t.Fatal(err)
	}
	signer, _, err := audit.ParseAuditKey([]byte(skey + "\n" + vkey))
	if err != nil {
		t.Fatal(err)
	}
	sealer, err := audit.NewSealer(audit.SealerOptions{Store: store, Ledger: ledger, Signer: signer})
	if err != nil {
		t.Fatal(err)
	}
	first, err := sealer.CatchUp(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// A sign-in appends events: a second, larger checkpoint.
	serveJSON(t, h, http.MethodPost, "/api/v2/identity/sessions", "", map[string]string{"email": "m0@example.com", "password": password})
	if _, err := sealer.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}

	var cp struct {
		Checkpoint string `json:"checkpoint"`
		TreeSize   uint64 `json:"tree_size"`
	}
	rec = serveJSON(t, h, http.MethodGet, "/api/v2/admin/audit/checkpoint", auditor, nil)
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &cp) != nil {
		t.Fatalf("checkpoint: %d %s", rec.Code, rec.Body)
	}
	head, err := audit.OpenCheckpoint([]byte(cp.Checkpoint), vkey)
	if err != nil || head.Size != cp.TreeSize || head.Size <= first.Ordinal {
		t.Fatalf("checkpoint %+v (%v), first seal %d", head, err, first.Ordinal)
	}

	var log []eventstore.Event
	for e, err := range store.ReadAll(ctx, 0, eventstore.Filter{}) {
		if err != nil {
			t.Fatal(err)
		}
		log = append(log, e)
	}
	for ord := uint64(1); ord <= head.Size; ord++ {
		for _, q := range []string{fmt.Sprintf("ordinal=%d", ord), "event_id=" + log[ord-1].ID.String()} {
			var p audit.InclusionProof
			rec := serveJSON(t, h, http.MethodGet, fmt.Sprintf("/api/v2/admin/audit/proofs/inclusion?%s&tree_size=%d", q, head.Size), auditor, nil)
			if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &p) != nil {
				t.Fatalf("inclusion %s: %d %s", q, rec.Code, rec.Body)
			}
			leaf := audit.LeafHash(audit.AppendCanonical(nil, ord, log[ord-1]))
			if err := proof.VerifyInclusion(rfc6962.DefaultHasher, ord-1, head.Size, leaf[:], raw(p.Hashes), head.Root[:]); err != nil || p.Ordinal != ord {
				t.Fatalf("inclusion of %d (%s): %v, %+v", ord, q, err, p)
			}
		}
	}
	var c audit.ConsistencyProof
	rec = serveJSON(t, h, http.MethodGet, fmt.Sprintf("/api/v2/admin/audit/proofs/consistency?from=%d&to=%d", first.Ordinal, head.Size), auditor, nil)
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &c) != nil {
		t.Fatalf("consistency: %d %s", rec.Code, rec.Body)
	}
	firstRoot, err := ledger.Root(ctx, first.Ordinal)
	if err != nil {
		t.Fatal(err)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, first.Ordinal, head.Size, raw(c.Hashes), firstRoot[:], head.Root[:]); err != nil {
		t.Fatalf("consistency %d to %d: %v", first.Ordinal, head.Size, err)
	}

	for path, code := range map[string]string{
		"/api/v2/admin/audit/proofs/inclusion?ordinal=0&tree_size=1":                            "admin.audit.invalid_ordinal",
		"/api/v2/admin/audit/proofs/inclusion?ordinal=1":                                        "admin.audit.invalid_tree_size",
		fmt.Sprintf("/api/v2/admin/audit/proofs/inclusion?ordinal=1&tree_size=%d", head.Size+1): "admin.audit.invalid_tree_size",
		"/api/v2/admin/audit/proofs/inclusion?ordinal=3&tree_size=2":                            "admin.audit.invalid_ordinal",
		"/api/v2/admin/audit/proofs/inclusion?event_id=nope&tree_size=2":                        "admin.audit.invalid_event_id",
		"/api/v2/admin/audit/proofs/consistency?from=3&to=2":                                    "admin.audit.invalid_from",
		fmt.Sprintf("/api/v2/admin/audit/proofs/consistency?from=1&to=%d", head.Size+1):         "admin.audit.invalid_to",
		"/api/v2/admin/audit/proofs/consistency?from=x&to=2":                                    "admin.audit.invalid_from",
	} {
		if rec := serveJSON(t, h, http.MethodGet, path, auditor, nil); rec.Code != http.StatusUnprocessableEntity || !containsCode(rec.Body.Bytes(), code) {
			t.Errorf("GET %s: %d %s, want 422 %s", path, rec.Code, rec.Body, code)
		}
	}
	if rec := serveJSON(t, h, http.MethodGet, "/api/v2/admin/audit/proofs/inclusion?event_id=0193a1b2-0000-7000-8000-000000000000&tree_size=2", auditor, nil); rec.Code != http.StatusNotFound {
		t.Errorf("inclusion of an unknown event: %d %s, want 404", rec.Code, rec.Body)
	}
	// Auditors only.
	rec = serveJSON(t, h, http.MethodPost, "/api/v2/identity/sessions", "", map[string]string{"email": "m1@example.com", "password": password})
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &session) != nil {
		t.Fatalf("sign-in: %d %s", rec.Code, rec.Body)
	}
	for _, path := range []string{"/api/v2/admin/audit/checkpoint", "/api/v2/admin/audit/proofs/inclusion?ordinal=1&tree_size=1", "/api/v2/admin/audit/proofs/consistency?from=1&to=1"} {
		if rec := serveJSON(t, h, http.MethodGet, path, session.AccessToken, nil); rec.Code != http.StatusForbidden {
			t.Errorf("member GET %s: %d, want 403", path, rec.Code)
		}
		if rec := serveJSON(t, h, http.MethodGet, path, "", nil); rec.Code != http.StatusUnauthorized {
			t.Errorf("anonymous GET %s: %d, want 401", path, rec.Code)
		}
	}
}

func raw(hs []audit.Hash) [][]byte {
	out := make([][]byte, len(hs))
	for i := range hs {
		out[i] = hs[i][:]
	}
	return out
}

func containsCode(body []byte, code string) bool {
	var e struct {
		Errors []string `json:"errors"`
	}
	if json.Unmarshal(body, &e) != nil {
		return false
	}
	for _, c := range e.Errors {
		if c == code {
			return true
		}
	}
	return false
}
