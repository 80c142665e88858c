package api_test

import (
	"encoding/hex"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/idlog/idlog/apikeys"
	"github.com/idlog/idlog/domain"
)

type apiKeyOut struct {
	KID, Algorithm, State, Secret string
	Scope                         []string
}

// enable2FA turns two-factor authentication on for the holder of access and returns the secret.
func (s *server) enable2FA(t *testing.T, access string) string {
	t.Helper()
	var qr struct{ URL string }
	s.post("/api/v2/resource/otp/generate_qrcode", nil, access).want(t, http.StatusCreated).json(t, &qr)
	u, err := url.Parse(qr.URL)
	if err != nil {
		t.Fatal(err)
	}
	secret := u.Query().Get("secret")
	s.post("/api/v2/resource/otp/enable", obj{"code": s.totp(t, secret, 0)}, access).want(t, http.StatusOK)
	return secret
}

// nextCode moves the clock to the next TOTP step and returns its code.
func (s *server) nextCode(t *testing.T, secret string) string {
	t.Helper()
	s.clock.Advance(30 * time.Second)
	return s.totp(t, secret, 0)
}

// signed makes a request signed with an API key at nonce (ms since the epoch).
func (s *server) signed(t *testing.T, method, path, kid, secret string, nonce int64, sig string) response {
	t.Helper()
	n := strconv.FormatInt(nonce, 10)
	if sig == "" {
		var err error
		if sig, err = apikeys.Signature("HS256", []byte(secret), n, kid); err != nil {
			t.Fatal(err)
		}
	}
	return s.do(request{method: method, path: path, header: http.Header{
		apikeys.HeaderKID: {kid}, apikeys.HeaderNonce: {n}, apikeys.HeaderSignature: {sig},
	}})
}

func (s *server) countEvents(t *testing.T, types ...string) int {
	n := 0
	for _, e := range s.events(t) {
		for _, ty := range types {
			if e.Type == ty {
				n++
			}
		}
	}
	return n
}

func TestAPIKeys(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, s *server) {
		const keys = "/api/v2/resource/api_keys"
		alice, tok := s.staff(t, "alice", domain.RoleMember)
		_, adminTok := s.staff(t, "admin", domain.RoleAdmin)

		// 2FA is required; a refused command appends nothing.
		s.post(keys, obj{"algorithm": "HS256", "totp_code": "123456"}, tok).want(t, http.StatusBadRequest, "resource.api_key.2fa_disabled")
		otp := s.enable2FA(t, tok)
		s.post(keys, obj{"algorithm": "HS256"}, tok).want(t, http.StatusUnprocessableEntity, "resource.api_key.missing_totp_code")
		s.post(keys, obj{"algorithm": "RS256", "totp_code": "1"}, tok).want(t, http.StatusUnprocessableEntity, "resource.api_key.invalid_algorithm")
		s.post(keys, obj{"algorithm": "HS256", "totp_code": "000000"}, tok).want(t, http.StatusUnprocessableEntity, "resource.api_key.invalid_totp")
		if n := s.countEvents(t, "APIKeyCreated"); n != 0 {
			t.Fatalf("%d keys created by refused requests", n)
		}

		// Created: the secret once, scopes normalised (a form body, comma separated, as Barong's).
		var k apiKeyOut
		s.post(keys, url.Values{"algorithm": {"HS256"}, "scope": {"resource, trade"}, "totp_code": {s.nextCode(t, otp)}}, tok).
			want(t, http.StatusCreated).json(t, &k)
		if _, err := hex.DecodeString(k.Secret); err != nil || len(k.Secret) != 32 || len(k.KID) != 16 || k.State != "active" ||
			strings.Join(k.Scope, ",") != "resource,trade" {
			t.Fatalf("created %+v", k)
		}
		// The same code again is a replay.
		s.post(keys, obj{"algorithm": "HS256", "totp_code": s.totp(t, otp, 0)}, tok).want(t, http.StatusUnprocessableEntity, "resource.api_key.invalid_totp")
		var list []apiKeyOut
		s.get(keys, tok).want(t, http.StatusOK).json(t, &list)
		if len(list) != 1 || list[0].KID != k.KID || list[0].Secret != "" {
			t.Fatalf("list = %+v", list)
		}
		s.get("/api/v2/admin/api_keys?uid="+alice, adminTok).want(t, http.StatusOK).json(t, &list)
		if len(list) != 1 || list[0].KID != k.KID {
			t.Fatalf("admin list = %+v", list)
		}
		s.get("/api/v2/admin/api_keys?uid="+alice, tok).want(t, http.StatusForbidden)
		// The secret is in no event and no log line.
		for _, e := range s.events(t) {
			if strings.Contains(string(e.Data), k.Secret) {
				t.Fatalf("event %s holds the secret", e.Type)
			}
		}
		if strings.Contains(s.logs.String(), k.Secret) {
			t.Fatal("a log line holds the secret")
		}

		// A signed request authenticates as alice.
		now := s.clock.Now().UnixMilli()
		var me struct{ UID string }
		s.signed(t, http.MethodGet, "/api/v2/resource/users/me", k.KID, k.Secret, now, "").want(t, http.StatusOK).json(t, &me)
		if me.UID != alice {
			t.Fatalf("signed request as %q, want %q", me.UID, alice)
		}
		s.signed(t, http.MethodGet, "/api/v2/resource/users/me", k.KID, k.Secret, now, "").want(t, http.StatusUnauthorized, "authz.nonce_reused")
		s.signed(t, http.MethodGet, "/api/v2/resource/users/me", k.KID, k.Secret, now-60_000, "").want(t, http.StatusUnauthorized, "authz.nonce_expired")
		s.signed(t, http.MethodGet, "/api/v2/resource/users/me", k.KID, "wrong", now+1, "").want(t, http.StatusUnauthorized, "authz.invalid_signature")
		s.signed(t, http.MethodGet, "/api/v2/resource/users/me", "nope", k.Secret, now+2, "").want(t, http.StatusUnauthorized, "authz.invalid_signature")
		s.signed(t, http.MethodGet, "/api/v2/resource/users/me", k.KID, k.Secret, now+3, "zz").want(t, http.StatusUnauthorized, "authz.invalid_signature")
		// A key does not manage keys.
		s.signed(t, http.MethodGet, keys, k.KID, k.Secret, now+4, "").want(t, http.StatusForbidden, "resource.api_key.session_required")

		// Disabled: refused; active again: accepted.
		var k2 apiKeyOut
		s.send(http.MethodPatch, keys+"/"+k.KID, obj{"state": "disabled", "totp_code": s.nextCode(t, otp)}, tok).want(t, http.StatusOK).json(t, &k2)
		if k2.State != "disabled" || strings.Join(k2.Scope, ",") != "resource,trade" {
			t.Fatalf("after disable %+v", k2)
		}
		now = s.clock.Now().UnixMilli()
		s.signed(t, http.MethodGet, "/api/v2/resource/users/me", k.KID, k.Secret, now, "").want(t, http.StatusUnauthorized, "authz.apikey_not_active")
		s.send(http.MethodPatch, keys+"/"+k.KID, obj{"state": "paused", "totp_code": "1"}, tok).want(t, http.StatusUnprocessableEntity, "resource.api_key.invalid_state")
		s.send(http.MethodPatch, keys+"/nope", obj{"state": "active", "totp_code": s.nextCode(t, otp)}, tok).want(t, http.StatusNotFound, "resource.api_key.doesnt_exist")
		s.send(http.MethodPatch, keys+"/"+k.KID, obj{"state": "active", "scope": []string{"trade"}, "totp_code": s.nextCode(t, otp)}, tok).want(t, http.StatusOK)
		now = s.clock.Now().UnixMilli()
		// Active again, but its scopes no longer cover the resource routes (apikey_scopes.go).
		s.signed(t, http.MethodGet, "/api/v2/resource/users/me", k.KID, k.Secret, now, "").want(t, http.StatusUnauthorized, "authz.api_key_scope")
		s.send(http.MethodPatch, keys+"/"+k.KID, obj{"scope": []string{"resource"}, "totp_code": s.nextCode(t, otp)}, tok).want(t, http.StatusOK)
		now = s.clock.Now().UnixMilli()
		s.signed(t, http.MethodGet, "/api/v2/resource/users/me", k.KID, k.Secret, now, "").want(t, http.StatusOK)

		// Deleted: the kid is unknown; its id can be taken again.
		var other apiKeyOut
		s.post(keys, obj{"algorithm": "HS512", "kid": "my-key", "totp_code": s.nextCode(t, otp)}, tok).want(t, http.StatusCreated).json(t, &other)
		s.post(keys, obj{"algorithm": "HS256", "kid": "my-key", "totp_code": s.nextCode(t, otp)}, tok).want(t, http.StatusUnprocessableEntity, "resource.api_key.kid_taken")
		s.send(http.MethodDelete, keys+"/my-key?totp_code="+s.nextCode(t, otp), nil, tok).want(t, http.StatusNoContent)
		s.get(keys, tok).want(t, http.StatusOK).json(t, &list)
		if len(list) != 1 {
			t.Fatalf("after delete %+v", list)
		}
		now = s.clock.Now().UnixMilli()
		sig, _ := apikeys.Signature("HS512", []byte(other.Secret), strconv.FormatInt(now, 10), "my-key")
		s.signed(t, http.MethodGet, "/api/v2/resource/users/me", "my-key", "", now, sig).want(t, http.StatusUnauthorized, "authz.invalid_signature")
		s.post(keys, obj{"algorithm": "HS256", "kid": "my-key", "totp_code": s.nextCode(t, otp)}, tok).want(t, http.StatusCreated)

		// An owner who turns 2FA off cannot use their keys (Barong).
		s.post("/api/v2/resource/otp/disable", obj{"code": s.nextCode(t, otp)}, tok).want(t, http.StatusOK)
		now = s.clock.Now().UnixMilli()
		s.signed(t, http.MethodGet, "/api/v2/resource/users/me", k.KID, k.Secret, now, "").want(t, http.StatusUnauthorized, "authz.disabled_2fa")

		// The key's life is in its owner's activity log, without the secret.
		s.caughtUp(t)
		act := s.get("/api/v2/resource/users/activity/account", tok).want(t, http.StatusOK)
		for _, action := range []string{"create_api_key", "change_api_key", "delete_api_key"} {
			if !strings.Contains(act.body, `"`+action+`"`) {
				t.Errorf("activity has no %s: %.300s", action, act.body)
			}
		}
		if strings.Contains(act.body, k.Secret) {
			t.Error("the activity log holds the secret")
		}

		// A banned owner's key is refused.
		s.send(http.MethodPut, "/api/v2/admin/users", obj{"uid": alice, "state": "banned"}, adminTok).want(t, http.StatusOK)
		now = s.clock.Now().UnixMilli()
		s.signed(t, http.MethodGet, "/api/v2/resource/users/me", k.KID, k.Secret, now, "").want(t, http.StatusUnauthorized, "authz.user_not_active")
	})
}
