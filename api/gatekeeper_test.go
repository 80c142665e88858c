package api_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/idlog/idlog/apikeys"
	"github.com/idlog/idlog/auth"
	"github.com/idlog/idlog/authz"
	"github.com/idlog/idlog/authz/geoiptest"
	"github.com/idlog/idlog/domain"
)

// gate asks the authz endpoint about method path, from remote, as a gateway would: the original
// path after /api/v2/auth. It goes to the raw router: the document describes /api/v2/auth/{path}
// with one segment, and these paths have many.
func (s *server) gate(method, path, token, remote string, header ...string) response {
	req := httptest.NewRequest(method, "/api/v2/auth"+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	if remote != "" {
		req.RemoteAddr = remote + ":5555"
	}
	rec := httptest.NewRecorder()
	s.raw.ServeHTTP(rec, req)
	return response{status: rec.Code, header: rec.Header(), body: rec.Body.String()}
}

// upstreamClaims verifies the token the authz endpoint gave, as an upstream service would with
// the JWKS key and the upstream audience.
func (s *server) upstreamClaims(t *testing.T, r response) auth.AccessClaims {
	t.Helper()
	scheme, tok, _ := strings.Cut(r.header.Get("Authorization"), " ")
	if scheme != "Bearer" || tok == "" {
		t.Fatalf("no upstream token: %v", r.header)
	}
	v, err := auth.NewSigner(s.key, auth.SignerConfig{Issuer: "idlog", Audience: "idlog:upstream", Now: s.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	c, err := v.Verify(tok)
	if err != nil {
		t.Fatalf("upstream token does not verify: %v", err)
	}
	// Not an idlog access token: another audience.
	if _, err := s.signer.Verify(tok); err == nil {
		t.Fatal("the upstream token is accepted as an idlog access token")
	}
	return c
}

type permissionOut struct {
	ID                       int64
	Role, Verb, Path, Action string
	Topic                    string
}

func TestGatekeeperPermissions(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, s *server) {
		const perms = "/api/v2/admin/permissions"
		member, tok := s.staff(t, "mia", domain.RoleMember)
		_, adminTok := s.staff(t, "ada", domain.RoleAdmin)

		// No permission at all: refused.
		s.gate(http.MethodGet, "/api/v2/trade/markets", tok, "").want(t, http.StatusUnauthorized, "authz.invalid_permission")
		s.gate(http.MethodGet, "/api/v2/trade/markets", "", "").want(t, http.StatusUnauthorized, "authz.missing_token")

		// Only administrators with the ability edit them; bad fields are refused and append nothing.
		s.post(perms, obj{"role": "member", "verb": "GET", "path": "api", "action": "ACCEPT"}, tok).want(t, http.StatusForbidden, "admin.ability.not_permitted")
		s.post(perms, obj{"role": "member", "verb": "GET", "path": "api", "action": "allow"}, adminTok).want(t, http.StatusUnprocessableEntity, "admin.permission.invalid_action")
		s.post(perms, obj{"role": "member", "verb": "GET"}, adminTok).want(t, http.StatusUnprocessableEntity, "admin.permission.missing_path", "admin.permission.missing_action")
		if n := s.countEvents(t, "PermissionCreated"); n != 0 {
			t.Fatalf("%d permissions from refused requests", n)
		}

		var accept, drop, audit permissionOut
		s.post(perms, url.Values{"role": {"member"}, "verb": {"get"}, "path": {"/api/v2/trade"}, "action": {"accept"}}, adminTok).
			want(t, http.StatusCreated).json(t, &accept)
		if accept.ID != 1 || accept.Verb != "GET" || accept.Path != "api/v2/trade" || accept.Action != "ACCEPT" {
			t.Fatalf("created %+v", accept)
		}
		s.post(perms, obj{"role": "member", "verb": "ALL", "path": "api/v2/trade/withdraw", "action": "DROP"}, adminTok).want(t, http.StatusCreated).json(t, &drop)
		s.post(perms, obj{"role": "member", "verb": "GET", "path": "api/v2/trade/orders", "action": "AUDIT", "topic": "orders"}, adminTok).
			want(t, http.StatusCreated).json(t, &audit)

		// ACCEPT: through, with a token for the upstream that the JWKS key verifies.
		r := s.gate(http.MethodGet, "/api/v2/trade/markets?x=1", tok, "").want(t, http.StatusOK)
		if c := s.upstreamClaims(t, r); c.UserID != member || c.Role != "member" || c.SessionID == "" || r.header.Get("X-User-UID") != member {
			t.Fatalf("upstream claims %+v", c)
		}
		// The token is reused during the first half of its life, then a new one is signed.
		again := s.gate(http.MethodGet, "/api/v2/trade/markets", tok, "").want(t, http.StatusOK)
		s.clock.Advance(31 * time.Second)
		later := s.gate(http.MethodGet, "/api/v2/trade/markets", tok, "").want(t, http.StatusOK)
		if again.header.Get("Authorization") != r.header.Get("Authorization") || later.header.Get("Authorization") == r.header.Get("Authorization") {
			t.Error("upstream tokens are not reused for half their life, then renewed")
		}
		s.upstreamClaims(t, later)
		// The verb must match: POST is not GET; the original method comes from the gateway's header.
		s.gate(http.MethodPost, "/api/v2/trade/markets", tok, "").want(t, http.StatusUnauthorized, "authz.invalid_permission")
		s.gate(http.MethodGet, "/api/v2/trade/markets", tok, "", "X-Original-Method", "POST").want(t, http.StatusUnauthorized, "authz.invalid_permission")
		// DROP wins over ACCEPT.
		s.gate(http.MethodGet, "/api/v2/trade/withdraw", tok, "").want(t, http.StatusUnauthorized, "authz.invalid_permission")
		// AUDIT with ACCEPT: through, and recorded under its topic.
		s.gate(http.MethodGet, "/api/v2/trade/orders/7", tok, "").want(t, http.StatusOK)
		s.caughtUp(t)
		var rows []struct{ Topic, Action, Data, UserIP string }
		var activity []map[string]any
		s.get("/api/v2/resource/users/activity/all", tok).want(t, http.StatusOK).json(t, &activity)
		for _, a := range activity {
			if a["topic"] == "orders" {
				rows = append(rows, struct{ Topic, Action, Data, UserIP string }{fmt.Sprint(a["topic"]), fmt.Sprint(a["action"]), fmt.Sprint(a["data"]), fmt.Sprint(a["user_ip"])})
			}
		}
		if len(rows) != 1 || rows[0].Action != "request" || !strings.Contains(rows[0].Data, "api/v2/trade/orders/7") {
			t.Errorf("audited request in the activity log: %+v", rows)
		}
		// AUDIT alone does not let through (Barong: an ACCEPT is needed).
		s.post(perms, obj{"role": "member", "verb": "GET", "path": "api/v2/report", "action": "AUDIT", "topic": "r"}, adminTok).want(t, http.StatusCreated)
		s.gate(http.MethodGet, "/api/v2/report", tok, "").want(t, http.StatusUnauthorized, "authz.invalid_permission")
		// Another role has its own rules: none for admins.
		s.gate(http.MethodGet, "/api/v2/trade/markets", adminTok, "").want(t, http.StatusUnauthorized, "authz.invalid_permission")
		// A fixed-address gateway (Traefik) gives the path in a header.
		s.gate(http.MethodGet, "/", tok, "", "X-Forwarded-Uri", "/api/v2/trade/markets").want(t, http.StatusOK)
		// ...but a client's header never overrides the path in the address.
		s.gate(http.MethodGet, "/api/v2/trade/withdraw", tok, "", "X-Original-URI", "/api/v2/trade/markets").want(t, http.StatusUnauthorized, "authz.invalid_permission")
		// Public paths need no token.
		s.gate(http.MethodGet, "/api/v2/public-upstream/ticker", "", "").want(t, http.StatusOK)

		// Change and delete take effect at once.
		var changed permissionOut
		s.send(http.MethodPut, perms, obj{"id": drop.ID, "action": "ACCEPT"}, adminTok).want(t, http.StatusOK).json(t, &changed)
		if changed.Action != "ACCEPT" || changed.Path != "api/v2/trade/withdraw" {
			t.Fatalf("changed %+v", changed)
		}
		s.gate(http.MethodDelete, "/api/v2/trade/withdraw", tok, "").want(t, http.StatusOK)
		s.send(http.MethodDelete, perms+"?id="+strconv.FormatInt(accept.ID, 10), nil, adminTok).want(t, http.StatusNoContent)
		s.gate(http.MethodGet, "/api/v2/trade/markets", tok, "").want(t, http.StatusUnauthorized, "authz.invalid_permission")
		s.send(http.MethodDelete, perms+"?id="+strconv.FormatInt(accept.ID, 10), nil, adminTok).want(t, http.StatusNotFound, "admin.permission.doesnt_exist")
		var list []permissionOut
		r = s.get(perms, adminTok).want(t, http.StatusOK)
		r.json(t, &list)
		if len(list) != 3 || r.header.Get("Total") != "3" || list[0].ID != drop.ID {
			t.Fatalf("list %+v", list)
		}

		// An API key authenticates as its owner; the upstream token names the key.
		otp := s.enable2FA(t, tok)
		var k apiKeyOut
		s.post("/api/v2/resource/api_keys", obj{"algorithm": "HS256", "totp_code": s.nextCode(t, otp)}, tok).want(t, http.StatusCreated).json(t, &k)
		nonce := strconv.FormatInt(s.clock.Now().UnixMilli(), 10)
		sig, _ := apikeys.Signature("HS256", []byte(k.Secret), nonce, k.KID)
		keyed := []string{apikeys.HeaderKID, k.KID, apikeys.HeaderNonce, nonce, apikeys.HeaderSignature, sig}
		r = s.gate(http.MethodGet, "/api/v2/trade/withdraw", "", "", keyed...).want(t, http.StatusOK)
		if c := s.upstreamClaims(t, r); c.UserID != member || c.SessionID != "apikey:"+k.KID {
			t.Fatalf("api key upstream claims %+v", c)
		}
		s.gate(http.MethodGet, "/api/v2/trade/withdraw", "", "", keyed...).want(t, http.StatusUnauthorized, "authz.nonce_reused")
		// Wrong signatures are throttled per key and address: hammering from one address does not
		// lock the key's owner out elsewhere.
		for i := range apikeys.DefaultPolicy.Free {
			bad := []string{apikeys.HeaderKID, k.KID, apikeys.HeaderNonce, strconv.FormatInt(s.clock.Now().UnixMilli()+int64(i), 10), apikeys.HeaderSignature, "00"}
			s.gate(http.MethodGet, "/api/v2/trade/withdraw", "", "198.51.100.7", bad...).want(t, http.StatusUnauthorized, "authz.invalid_signature")
		}
		nonce = strconv.FormatInt(s.clock.Now().UnixMilli()+100, 10)
		sig, _ = apikeys.Signature("HS256", []byte(k.Secret), nonce, k.KID)
		keyed = []string{apikeys.HeaderKID, k.KID, apikeys.HeaderNonce, nonce, apikeys.HeaderSignature, sig}
		if r := s.gate(http.MethodGet, "/api/v2/trade/withdraw", "", "198.51.100.7", keyed...).want(t, http.StatusTooManyRequests, "authz.too_many_attempts"); r.header.Get("Retry-After") == "" {
			t.Error("a throttled signature without Retry-After")
		}
		s.gate(http.MethodGet, "/api/v2/trade/withdraw", "", "203.0.113.9", keyed...).want(t, http.StatusOK)

		// A client's Idempotency-Key, passed on by the gateway, never replays a decision.
		s.gate(http.MethodPost, "/api/v2/trade/withdraw", tok, "", "Idempotency-Key", "same-key").want(t, http.StatusOK)

		// Signed out: refused.
		s.send(http.MethodDelete, "/api/v2/identity/sessions", nil, tok).want(t, http.StatusNoContent)
		s.gate(http.MethodGet, "/api/v2/trade/withdraw", tok, "").want(t, http.StatusUnauthorized, "authz.invalid_session")
		s.gate(http.MethodPost, "/api/v2/trade/withdraw", tok, "", "Idempotency-Key", "same-key").want(t, http.StatusUnauthorized, "authz.invalid_session")

		for _, e := range s.events(t) {
			if strings.HasPrefix(e.Type, "Permission") && e.StreamID != domain.AccessPolicyStream {
				t.Errorf("%s in stream %s", e.Type, e.StreamID)
			}
		}
	})
}

type restrictionOut struct {
	ID                            int64
	Category, Scope, Value, State string
	Code                          int
}

func TestGatekeeperRestrictions(t *testing.T) {
	t.Parallel()
	geo, err := authz.OpenGeoIP(geoiptest.Write(t,
		geoiptest.Network{CIDR: "81.0.0.0/8", Country: "FR", Continent: "EU"},
		geoiptest.Network{CIDR: "1.0.0.0/8", Country: "JP", Continent: "AS"},
	))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = geo.Close() })
	for _, b := range backends(t) {
		t.Run(b, func(t *testing.T) {
			t.Parallel()
			s := newServer(t, b, serverOptions{geo: geo})
			const restrictions = "/api/v2/admin/restrictions"
			_, tok := s.staff(t, "rita", domain.RoleMember)
			_, adminTok := s.staff(t, "ada", domain.RoleAdmin)
			s.post("/api/v2/admin/permissions", obj{"role": "member", "verb": "ALL", "path": "api", "action": "ACCEPT"}, adminTok).want(t, http.StatusCreated)
			ok := func(ip, path string) {
				t.Helper()
				s.gate(http.MethodGet, path, tok, ip).want(t, http.StatusOK)
			}
			refused := func(ip, path string, status int, code string) {
				t.Helper()
				s.gate(http.MethodGet, path, tok, ip).want(t, status, code)
			}
			add := func(category, scope, value string) restrictionOut {
				t.Helper()
				var x restrictionOut
				s.post(restrictions, obj{"category": category, "scope": scope, "value": value}, adminTok).want(t, http.StatusCreated).json(t, &x)
				return x
			}
			del := func(x restrictionOut) {
				t.Helper()
				s.send(http.MethodDelete, fmt.Sprintf("%s?id=%d", restrictions, x.ID), nil, adminTok).want(t, http.StatusNoContent)
			}
			ok("81.1.1.1", "/api/v2/x")

			// Validation.
			s.post(restrictions, obj{"category": "greylist", "scope": "ip", "value": "1.2.3.4"}, adminTok).want(t, http.StatusUnprocessableEntity, "admin.restriction.invalid_category")
			s.post(restrictions, obj{"category": "blacklist", "scope": "ip", "value": "1.2.3"}, adminTok).want(t, http.StatusUnprocessableEntity, "admin.restriction.invalid_value")
			s.post(restrictions, obj{"category": "blacklist", "scope": "ip"}, adminTok).want(t, http.StatusUnprocessableEntity, "admin.restriction.missing_value")
			s.post(restrictions, obj{"category": "blacklist", "scope": "ip", "value": "1.2.3.4"}, tok).want(t, http.StatusForbidden, "admin.ability.not_permitted")

			// blacklist, by ip, subnet, country and continent, with Barong's statuses.
			x := add("blacklist", "ip", "81.2.2.2")
			if x.Code != 401 || x.State != "enabled" {
				t.Fatalf("created %+v", x)
			}
			s.post(restrictions, obj{"category": "blacklist", "scope": "ip", "value": "81.2.2.2"}, adminTok).want(t, http.StatusUnprocessableEntity, "admin.restriction.already_exists")
			refused("81.2.2.2", "/api/v2/x", 401, "authz.restrict.blacklist")
			ok("81.2.2.3", "/api/v2/x")
			// Disabled: no longer applies.
			s.send(http.MethodPut, restrictions, obj{"id": x.ID, "state": "disabled"}, adminTok).want(t, http.StatusOK)
			ok("81.2.2.2", "/api/v2/x")
			del(x)
			x = add("blacklist", "ip_subnet", "81.3.0.0/16")
			refused("81.3.4.5", "/api/v2/x", 403, "authz.restrict.blacklist")
			del(x)
			x = add("blacklist", "country", "jp")
			refused("1.2.3.4", "/api/v2/x", 423, "authz.restrict.blacklist")
			ok("81.1.1.1", "/api/v2/x")
			del(x)
			x = add("blacklist", "continent", "EU")
			refused("81.1.1.1", "/api/v2/x", 423, "authz.restrict.blacklist")
			ok("1.2.3.4", "/api/v2/x")
			del(x)

			// blocklogin: only the sign-in path.
			x = add("blocklogin", "ip", "81.4.4.4")
			refused("81.4.4.4", "/api/v2/identity/sessions", 401, "authz.restrict.blocklogin")
			ok("81.4.4.4", "/api/v2/x")
			// ...and a sign-in made to idlog directly from there too.
			s.do(request{method: http.MethodPost, path: "/api/v2/identity/sessions", body: obj{"login": "rita@example.com", "password": password}, remote: "81.4.4.4:1"}).
				want(t, http.StatusUnauthorized, "authz.restrict.blocklogin")
			s.do(request{method: http.MethodPost, path: "/api/v2/identity/sessions", body: obj{"login": "rita@example.com", "password": password}, remote: "81.4.4.5:1"}).
				want(t, http.StatusOK)
			del(x)

			// maintenance for everyone, whitelisted addresses excepted; a whitelink whitelists its user.
			m := add("maintenance", "all", "all")
			refused("81.1.1.1", "/api/v2/x", 471, "authz.restrict.maintenance")
			w := add("whitelist", "ip", "81.5.5.5")
			ok("81.5.5.5", "/api/v2/x")
			var link struct {
				Token string `json:"whitelink_token"`
			}
			s.post("/api/v2/admin/restrictions/whitelink", obj{"expire_time": 1, "range": "h"}, adminTok).want(t, http.StatusCreated).json(t, &link)
			s.do(request{method: http.MethodPost, path: "/api/v2/identity/users/access", body: obj{"whitelink_token": link.Token + "x"}, remote: "81.6.6.6:1"}).
				want(t, http.StatusUnprocessableEntity, "identity.access.invalid_token")
			s.do(request{method: http.MethodPost, path: "/api/v2/identity/users/access", body: obj{"whitelink_token": link.Token}, remote: "81.6.6.6:1"}).
				want(t, http.StatusCreated)
			ok("81.6.6.6", "/api/v2/x")
			refused("81.6.6.7", "/api/v2/x", 471, "authz.restrict.maintenance")
			// Expired: refused.
			s.clock.Advance(2 * 60 * 60 * 1e9)
			s.do(request{method: http.MethodPost, path: "/api/v2/identity/users/access", body: obj{"whitelink_token": link.Token}, remote: "81.6.6.7:1"}).
				want(t, http.StatusUnprocessableEntity, "identity.access.expired_token")
			// Under maintenance, only a whitelisted address signs in.
			s.do(request{method: http.MethodPost, path: "/api/v2/identity/sessions", body: obj{"login": "ada@example.com", "password": password}}).
				want(t, 471, "authz.restrict.maintenance")
			signIn := func(login string) string {
				var out struct {
					AccessToken string `json:"access_token"`
				}
				s.do(request{method: http.MethodPost, path: "/api/v2/identity/sessions", body: obj{"login": login, "password": password}, remote: "81.5.5.5:1"}).
					want(t, http.StatusOK).json(t, &out)
				return out.AccessToken
			}
			tok, adminTok = signIn("rita@example.com"), signIn("ada@example.com")

			var list []restrictionOut
			s.get(restrictions+"?category=whitelist", adminTok).want(t, http.StatusOK).json(t, &list)
			if len(list) != 2 || list[0].ID != w.ID || list[1].Value != "81.6.6.6" {
				t.Fatalf("whitelist %+v", list)
			}
			del(m)
			ok("81.6.6.7", "/api/v2/x")
		})
	}
}

// The authz endpoint's answers agree with the document (a one-segment path, which the document's
// {path} matches).
func TestGatekeeperContract(t *testing.T) {
	t.Parallel()
	s := newServer(t, "sqlite", serverOptions{})
	_, tok := s.staff(t, "cora", domain.RoleMember)
	_, adminTok := s.staff(t, "ada", domain.RoleAdmin)
	s.send(http.MethodGet, "/api/v2/auth/trade", "", "").want(t, http.StatusUnauthorized, "authz.missing_token")
	s.send(http.MethodPost, "/api/v2/auth/trade", nil, tok).want(t, http.StatusUnauthorized, "authz.invalid_permission")
	s.post("/api/v2/admin/permissions", obj{"role": "member", "verb": "ALL", "path": "trade", "action": "ACCEPT"}, adminTok).want(t, http.StatusCreated)
	s.send(http.MethodPut, "/api/v2/auth/trade", nil, tok).want(t, http.StatusOK)
	s.post("/api/v2/admin/restrictions", obj{"category": "maintenance", "scope": "all", "value": "all"}, adminTok).want(t, http.StatusCreated)
	s.send(http.MethodDelete, "/api/v2/auth/trade", nil, tok).want(t, 471, "authz.restrict.maintenance")
	s.post("/api/v2/admin/restrictions", obj{"category": "blacklist", "scope": "ip_subnet", "value": "192.0.2.0/24"}, adminTok).want(t, http.StatusCreated)
	s.send(http.MethodPatch, "/api/v2/auth/trade", nil, tok).want(t, 471, "authz.restrict.maintenance")
}
