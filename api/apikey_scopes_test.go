package api_test

import (
	"net/http"
	"testing"

	"github.com/idlog/idlog/domain"
)

// keyed is the headers of a request signed with k, as pairs for server.gate.
func (s *server) keyed(t *testing.T, k apiKeyOut, ahead int64) []string {
	t.Helper()
	var out []string
	for name, v := range s.signedHeader(t, k.KID, k.Secret, ahead) {
		out = append(out, name, v[0])
	}
	return out
}

// A key with scopes reaches idlog's routes only in its sections, and passes the authz endpoint
// only where an ACCEPT permission of one of its scopes' topics matches; a key without scopes
// reaches what its owner reaches (apikey_scopes.go).
func TestAPIKeyScopes(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, s *server) {
		_, adminTok := s.staff(t, "boss", domain.RoleAdmin)
		s.post("/api/v2/admin/permissions", obj{"role": "admin", "verb": "ALL", "path": "api/v2/trade", "action": "ACCEPT", "topic": "trade"}, adminTok).
			want(t, http.StatusCreated)
		s.post("/api/v2/admin/permissions", obj{"role": "admin", "verb": "GET", "path": "api/v2/market", "action": "ACCEPT"}, adminTok).
			want(t, http.StatusCreated)
		otp := s.enable2FA(t, adminTok)
		all := s.apiKey(t, adminTok, otp, "")
		trade := s.apiKey(t, adminTok, otp, "trade")
		resource := s.apiKey(t, adminTok, otp, "resource")
		signed := func(method, path string, k apiKeyOut, ahead int64) response {
			return s.do(request{method: method, path: path, header: s.signedHeader(t, k.KID, k.Secret, ahead)})
		}

		// Without scopes: everything the owner may do.
		signed(http.MethodGet, "/api/v2/resource/users/me", all, 0).want(t, http.StatusOK)
		signed(http.MethodGet, "/api/v2/admin/users", all, 1).want(t, http.StatusOK)
		s.gate(http.MethodGet, "/api/v2/trade/orders", "", "", s.keyed(t, all, 2)...).want(t, http.StatusOK)
		s.gate(http.MethodGet, "/api/v2/market/tickers", "", "", s.keyed(t, all, 3)...).want(t, http.StatusOK)

		// Scope trade: the trade service (its permission's topic), not idlog, not the market
		// (whose permission has no topic).
		s.gate(http.MethodPost, "/api/v2/trade/orders", "", "", s.keyed(t, trade, 0)...).want(t, http.StatusOK)
		signed(http.MethodGet, "/api/v2/resource/users/me", trade, 1).want(t, http.StatusUnauthorized, "authz.api_key_scope")
		signed(http.MethodGet, "/api/v2/admin/users", trade, 2).want(t, http.StatusUnauthorized, "authz.api_key_scope")
		s.gate(http.MethodGet, "/api/v2/market/tickers", "", "", s.keyed(t, trade, 3)...).want(t, http.StatusUnauthorized, "authz.api_key_scope")
		// Unsafe methods too, through the idempotency decorator (which finds the caller first).
		h := s.signedHeader(t, trade.KID, trade.Secret, 4)
		h.Set("Idempotency-Key", "scoped-1")
		s.do(request{method: http.MethodPost, path: "/api/v2/admin/users/labels", body: obj{"uid": "ID0000000000", "key": "k", "value": "v"},
			header: h}).want(t, http.StatusUnauthorized, "authz.api_key_scope")

		// Scope resource: idlog's resource routes, not its admin routes, not the gateway.
		signed(http.MethodGet, "/api/v2/resource/users/me", resource, 0).want(t, http.StatusOK)
		signed(http.MethodGet, "/api/v2/admin/users", resource, 1).want(t, http.StatusUnauthorized, "authz.api_key_scope")
		s.gate(http.MethodGet, "/api/v2/trade/orders", "", "", s.keyed(t, resource, 2)...).want(t, http.StatusUnauthorized, "authz.api_key_scope")

		// Sessions are not limited by anything of the kind.
		s.gate(http.MethodGet, "/api/v2/market/tickers", adminTok, "").want(t, http.StatusOK)
		s.get("/api/v2/admin/users", adminTok).want(t, http.StatusOK)
	})
}
