package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/eventstore"
)

// promote gives a user another role, as an administrator's command would, by appending the
// event to their stream; the session check reads the role from the stream at the next request.
func (s *server) promote(t *testing.T, uid string, to domain.Role) {
	t.Helper()
	data, _ := json.Marshal(domain.RoleChanged{From: domain.RoleMember, To: to})
	_, err := s.store.Append(context.Background(), eventstore.Append{
		Stream: domain.UserID(uid).Stream(), Expected: eventstore.Any,
		Events: []eventstore.NewEvent{{Type: "RoleChanged", SchemaVersion: 1, Data: data, Metadata: eventstore.Metadata{ActorUID: eventstore.ActorSystem}}},
	})
	if err != nil {
		t.Fatal(err)
	}
}

// member signs a new member up and in; it returns the uid and an access token.
func (s *server) member(t *testing.T, name string) (uid, token string) {
	t.Helper()
	uid = s.signUp(t, name+"@example.com", "")
	return uid, s.signIn(t, name+"@example.com", "")
}

func (s *server) send(method, path string, body any, token string, header ...string) response {
	h := http.Header{}
	for i := 0; i+1 < len(header); i += 2 {
		h.Set(header[i], header[i+1])
	}
	return s.do(request{method: method, path: path, body: body, token: token, header: h})
}

type labelOut struct {
	Key, Value, Scope, Description string
	CreatedAt                      *string `json:"created_at"`
}

type meOut struct {
	UID            string
	Level          int
	Labels         []labelOut
	WalletFree     int64 `json:"wallet_free"`
	WalletStandard int64 `json:"wallet_standard"`
}

func (s *server) me(t *testing.T, token string) meOut {
	t.Helper()
	var m meOut
	s.get("/api/v2/resource/users/me", token).want(t, http.StatusOK).json(t, &m)
	return m
}

func labelKeys(ls []labelOut) string {
	var parts []string
	for _, l := range ls {
		parts = append(parts, l.Key+"="+l.Value+"/"+l.Scope)
	}
	return strings.Join(parts, " ")
}

func TestLabelsHTTP(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, s *server) {
		alice, aliceToken := s.member(t, "alice")
		_, bobToken := s.member(t, "bob")
		boss, bossToken := s.member(t, "boss")
		s.promote(t, boss, domain.RoleAdmin)

		// A member's own public labels.
		var l labelOut
		s.post("/api/v2/resource/labels", obj{"key": "nickname", "value": "ally"}, aliceToken).want(t, http.StatusCreated).json(t, &l)
		if l.Key != "nickname" || l.Value != "ally" || l.Scope != "public" || l.CreatedAt == nil {
			t.Errorf("created label = %+v", l)
		}
		s.post("/api/v2/resource/labels", obj{"key": "nickname", "value": "again"}, aliceToken).want(t, http.StatusUnprocessableEntity, "resource.labels.key_taken")
		s.post("/api/v2/resource/labels", obj{"key": "Bad Key", "value": "ally"}, aliceToken).want(t, http.StatusUnprocessableEntity, "resource.labels.invalid_key")
		s.post("/api/v2/resource/labels", obj{"key": "colour"}, aliceToken).want(t, http.StatusUnprocessableEntity, "resource.labels.missing_value")
		s.send(http.MethodPatch, "/api/v2/resource/labels/nickname", obj{"value": "al"}, aliceToken).want(t, http.StatusUnprocessableEntity, "resource.labels.invalid_value")
		s.send(http.MethodPatch, "/api/v2/resource/labels/nickname", obj{"value": "alice_1"}, aliceToken).want(t, http.StatusOK).json(t, &l)
		if l.Value != "alice_1" {
			t.Errorf("patched label = %+v", l)
		}
		s.get("/api/v2/resource/labels/nickname", aliceToken).want(t, http.StatusOK).json(t, &l)
		if l.Value != "alice_1" {
			t.Errorf("GET after PATCH = %+v", l)
		}

		// Another user sees none of it and changes none of it.
		var bobs []labelOut
		s.get("/api/v2/resource/labels", bobToken).want(t, http.StatusOK).json(t, &bobs)
		if len(bobs) != 0 {
			t.Errorf("bob sees labels %v", labelKeys(bobs))
		}
		s.get("/api/v2/resource/labels/nickname", bobToken).want(t, http.StatusNotFound, "resource.labels.not_found")
		s.send(http.MethodPatch, "/api/v2/resource/labels/nickname", obj{"value": "hacked"}, bobToken).want(t, http.StatusNotFound, "resource.labels.not_found")
		s.send(http.MethodDelete, "/api/v2/resource/labels/nickname", nil, bobToken).want(t, http.StatusNotFound, "resource.labels.not_found")
		// The admin routes are closed to members, whoever they name.
		s.post("/api/v2/admin/users/labels", obj{"uid": alice, "key": "email", "value": "verified", "scope": "private"}, bobToken).
			want(t, http.StatusForbidden, "admin.ability.not_permitted")
		s.get("/api/v2/admin/users/labels?key=nickname", bobToken).want(t, http.StatusForbidden, "admin.ability.not_permitted")

		// Levels follow the labels an administrator sets, at once.
		if m := s.me(t, aliceToken); m.Level != 0 || labelKeys(m.Labels) != "nickname=alice_1/public" {
			t.Errorf("me before = %+v", m)
		}
		s.post("/api/v2/admin/users/labels", obj{"uid": alice, "key": "email", "value": "verified", "scope": "private"}, bossToken).want(t, http.StatusCreated)
		if m := s.me(t, aliceToken); m.Level != 1 {
			t.Errorf("level after email=verified = %d, want 1", m.Level)
		}
		s.post("/api/v2/admin/users/labels/update", obj{"uid": alice, "key": "phone", "value": "verified", "scope": "private"}, bossToken).
			want(t, http.StatusNotFound, "admin.labels.not_found")
		s.post("/api/v2/admin/users/labels/update", obj{"uid": alice, "key": "phone", "value": "verified", "scope": "private", "replace": true}, bossToken).want(t, http.StatusOK)
		if m := s.me(t, aliceToken); m.Level != 2 {
			t.Errorf("level after phone=verified = %d, want 2", m.Level)
		}
		s.send(http.MethodPut, "/api/v2/admin/users/labels", obj{"uid": alice, "key": "phone", "value": "rejected", "scope": "private"}, bossToken).want(t, http.StatusOK).json(t, &l)
		if l.Value != "rejected" || l.Scope != "private" {
			t.Errorf("PUT answer = %+v", l)
		}
		if m := s.me(t, aliceToken); m.Level != 1 {
			t.Errorf("level after phone=rejected = %d, want 1", m.Level)
		}
		// A new token carries the level.
		claims, err := s.signer.Verify(s.signIn(t, "alice@example.com", ""))
		if err != nil || claims.Level != 1 {
			t.Errorf("token level = %d, %v; want 1", claims.Level, err)
		}

		// A member never touches a private label: 403.
		s.post("/api/v2/resource/labels", obj{"key": "phone", "value": "verified"}, aliceToken).want(t, http.StatusForbidden, "resource.labels.private")
		s.send(http.MethodPatch, "/api/v2/resource/labels/email", obj{"value": "forged"}, aliceToken).want(t, http.StatusForbidden, "resource.labels.private")
		s.send(http.MethodDelete, "/api/v2/resource/labels/email", nil, aliceToken).want(t, http.StatusForbidden, "resource.labels.private")
		var mine []labelOut
		s.get("/api/v2/resource/labels", aliceToken).want(t, http.StatusOK).json(t, &mine)
		if got := labelKeys(mine); got != "email=verified/private nickname=alice_1/public phone=rejected/private" {
			t.Errorf("alice's labels = %s", got)
		}

		// Administrators list users by label, and the labels in use.
		var users []struct{ UID string }
		r := s.get("/api/v2/admin/users/labels?key=email&value=verified", bossToken).want(t, http.StatusOK)
		r.json(t, &users)
		if len(users) != 1 || users[0].UID != alice || r.header.Get("Total") != "1" {
			t.Errorf("users with email=verified = %+v (Total %s)", users, r.header.Get("Total"))
		}
		s.get("/api/v2/admin/users/labels", bossToken).want(t, http.StatusUnprocessableEntity, "admin.labels.missing_key")
		s.get("/api/v2/admin/users/labels?key=email&limit=1000", bossToken).want(t, http.StatusUnprocessableEntity, "admin.labels.invalid_limit")
		var keys []struct {
			Key, Value, Scope string
			Users             int
		}
		s.get("/api/v2/admin/users/labels/list", bossToken).want(t, http.StatusOK).json(t, &keys)
		if len(keys) != 3 {
			t.Errorf("labels in use = %+v", keys)
		}
		var levels []struct {
			ID         int
			Key, Value string
		}
		s.get("/api/v2/admin/levels", bossToken).want(t, http.StatusOK).json(t, &levels)
		if fmt.Sprint(levels) != "[{1 email verified} {2 phone verified} {3 document verified}]" {
			t.Errorf("levels = %v", levels)
		}
		s.get("/api/v2/admin/levels", aliceToken).want(t, http.StatusForbidden, "admin.ability.not_permitted")

		// Removing the lowest rung drops the level to 0; the query carries the fields.
		s.send(http.MethodDelete, "/api/v2/admin/users/labels?uid="+alice+"&key=email&scope=private", nil, bossToken).want(t, http.StatusNoContent)
		if m := s.me(t, aliceToken); m.Level != 0 {
			t.Errorf("level after removing email = %d, want 0", m.Level)
		}
		s.send(http.MethodDelete, "/api/v2/admin/users/labels?uid="+alice+"&key=email&scope=private", nil, bossToken).want(t, http.StatusNotFound, "admin.labels.not_found")
		s.post("/api/v2/admin/users/labels", obj{"uid": "ID00000000FF", "key": "email", "value": "verified"}, bossToken).want(t, http.StatusNotFound, "record.not_found")
		s.post("/api/v2/admin/users/labels", obj{"uid": "nope", "key": "email", "value": "verified"}, bossToken).want(t, http.StatusUnprocessableEntity, "admin.labels.invalid_uid")
		s.send(http.MethodDelete, "/api/v2/resource/labels/nickname", nil, aliceToken).want(t, http.StatusNoContent)
	})
}

// Confirming an email is a label: level 1 at once, in /users/me and in new tokens.
func TestEmailConfirmationGrantsLevel1HTTP(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, s *server) {
		s.signUp(t, "carol@example.com", "")
		token := s.mail.last(t, "email_confirmation", "carol@example.com")
		s.post("/api/v2/identity/users/email/confirm_code", obj{"token": token}, "").want(t, http.StatusCreated)
		access := s.signIn(t, "carol@example.com", "")
		m := s.me(t, access)
		if m.Level != 1 || labelKeys(m.Labels) != "email=verified/private" || m.WalletFree != 100 || m.WalletStandard != 0 {
			t.Errorf("me = %+v; want level 1, email=verified, 100 free coins", m)
		}
	})
}

type walletOut struct {
	Free, Standard int64
	Movements      []struct {
		ID              int64
		Balance, Reason string
		Reference       string
		Amount          int64
	}
}

func TestWalletHTTP(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, s *server) {
		alice, aliceToken := s.member(t, "alice")
		_, bobToken := s.member(t, "bob")
		acct, acctToken := s.member(t, "accountant")
		s.promote(t, acct, domain.RoleAccountant)

		var w walletOut
		s.get("/api/v2/resource/wallet", aliceToken).want(t, http.StatusOK).json(t, &w)
		if w.Free != 100 || w.Standard != 0 || len(w.Movements) != 1 || w.Movements[0].Reason != "signup_bonus" {
			t.Fatalf("new wallet = %+v", w)
		}

		credits := "/api/v2/admin/wallets/" + alice + "/credits"
		s.post(credits, obj{"balance": "standard", "amount": 30, "reason": "deposit", "reference": "psp-1"}, aliceToken).want(t, http.StatusForbidden, "admin.ability.not_permitted")
		s.post(credits, obj{"balance": "gold", "amount": 30, "reason": "deposit"}, acctToken).want(t, http.StatusUnprocessableEntity, "admin.wallet.invalid_balance")
		s.post(credits, obj{"balance": "standard", "amount": "lots", "reason": "deposit"}, acctToken).want(t, http.StatusUnprocessableEntity, "admin.wallet.invalid_amount")
		s.post(credits, obj{"balance": "standard", "amount": -3, "reason": "deposit"}, acctToken).want(t, http.StatusUnprocessableEntity, "admin.wallet.invalid_amount")
		s.post("/api/v2/admin/wallets/ID00000000FF/credits", obj{"balance": "standard", "amount": 3, "reason": "deposit"}, acctToken).want(t, http.StatusNotFound, "record.not_found")
		s.post(credits, obj{"balance": "standard", "amount": 30, "reason": "deposit", "reference": "psp-1"}, acctToken).want(t, http.StatusCreated).json(t, &w)
		if w.Free != 100 || w.Standard != 30 {
			t.Errorf("after the credit = %+v", w)
		}

		// Spend takes free coins first; withdrawals take standard coins only.
		s.post("/api/v2/resource/wallet/spend", obj{"amount": 110, "reference": "order-1"}, aliceToken).want(t, http.StatusOK).json(t, &w)
		if w.Free != 0 || w.Standard != 20 {
			t.Errorf("after spending 110 = %+v", w)
		}
		s.post("/api/v2/resource/wallet/withdrawals", obj{"amount": 21}, aliceToken).want(t, http.StatusUnprocessableEntity, "resource.wallet.insufficient_funds")
		s.post("/api/v2/resource/wallet/spend", obj{"amount": 21}, aliceToken).want(t, http.StatusUnprocessableEntity, "resource.wallet.insufficient_funds")
		s.post("/api/v2/resource/wallet/spend", obj{}, aliceToken).want(t, http.StatusUnprocessableEntity, "resource.wallet.missing_amount")
		s.post("/api/v2/resource/wallet/withdrawals", obj{"amount": 20, "reference": "iban-1"}, aliceToken).want(t, http.StatusCreated).json(t, &w)
		if w.Free != 0 || w.Standard != 0 {
			t.Errorf("after withdrawing 20 = %+v", w)
		}

		// GET right after shows every movement, newest first, paginated; /users/me the balances.
		r := s.get("/api/v2/resource/wallet?limit=2", aliceToken).want(t, http.StatusOK)
		r.json(t, &w)
		if len(w.Movements) != 2 || w.Movements[0].Reason != "withdrawal" || w.Movements[0].Amount != -20 || r.header.Get("Total") != "5" {
			t.Errorf("first page = %+v (Total %s)", w, r.header.Get("Total"))
		}
		s.get("/api/v2/resource/wallet?page=3&limit=2", aliceToken).want(t, http.StatusOK).json(t, &w)
		if len(w.Movements) != 1 || w.Movements[0].Reason != "signup_bonus" {
			t.Errorf("last page = %+v", w)
		}
		s.get("/api/v2/resource/wallet?limit=0", aliceToken).want(t, http.StatusOK)
		s.get("/api/v2/resource/wallet?page=x", aliceToken).want(t, http.StatusUnprocessableEntity, "resource.wallet.invalid_page")
		if m := s.me(t, aliceToken); m.WalletFree != 0 || m.WalletStandard != 0 {
			t.Errorf("me = %+v", m)
		}

		// Another user's wallet is untouched and unseen.
		s.get("/api/v2/resource/wallet", bobToken).want(t, http.StatusOK).json(t, &w)
		if w.Free != 100 || w.Standard != 0 || len(w.Movements) != 1 {
			t.Errorf("bob's wallet = %+v", w)
		}
		if no := s.get("/api/v2/resource/wallet", "").status; no != http.StatusUnauthorized {
			t.Errorf("anonymous wallet: %d", no)
		}
	})
}

// 100 spends of 1 coin race against a balance of 50: exactly 50 succeed, the others are told the
// funds are insufficient, the balance ends at 0, and no reader ever sees it below 0.
func TestConcurrentSpendsHTTP(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, s *server) {
		_, token := s.member(t, "hot")
		s.post("/api/v2/resource/wallet/spend", obj{"amount": 50}, token).want(t, http.StatusOK) // 100 -> 50
		var ok, broke atomic.Int32
		var wg sync.WaitGroup
		stop := make(chan struct{})
		var negative atomic.Bool
		go func() { // a reader polling while the spends run
			for {
				select {
				case <-stop:
					return
				default:
				}
				var w walletOut
				if r := s.get("/api/v2/resource/wallet?limit=1", token); r.status == http.StatusOK {
					if json.Unmarshal([]byte(r.body), &w) == nil && (w.Free < 0 || w.Standard < 0) {
						negative.Store(true)
					}
				}
			}
		}()
		for i := range 100 {
			wg.Go(func() {
				r := s.post("/api/v2/resource/wallet/spend", obj{"amount": 1, "reference": fmt.Sprint("order-", i)}, token)
				switch {
				case r.status == http.StatusOK:
					ok.Add(1)
				case r.status == http.StatusUnprocessableEntity && strings.Contains(r.body, "resource.wallet.insufficient_funds"):
					broke.Add(1)
				default:
					t.Errorf("spend %d: %d %s", i, r.status, r.body)
				}
			})
		}
		wg.Wait()
		close(stop)
		if ok.Load() != 50 || broke.Load() != 50 {
			t.Errorf("%d spends succeeded, %d refused; want 50 and 50", ok.Load(), broke.Load())
		}
		if negative.Load() {
			t.Error("a reader saw a negative balance")
		}
		// Each spend waited for the read models within its bound; on a loaded machine the last
		// ones may have answered before: the final read is of the whole log.
		s.caughtUp(t)
		var w walletOut
		r := s.get("/api/v2/resource/wallet", token).want(t, http.StatusOK)
		r.json(t, &w)
		if w.Free != 0 || w.Standard != 0 || r.header.Get("Total") != "52" {
			t.Errorf("final wallet = %d free, %d standard, %s movements; want 0, 0, 52", w.Free, w.Standard, r.header.Get("Total"))
		}
	})
}

// One credit retried 20 times with one Idempotency-Key credits once and answers the same each
// time; the key sent to another user's wallet is refused.
func TestCreditIdempotencyHTTP(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, s *server) {
		alice, aliceToken := s.member(t, "alice")
		bob, _ := s.member(t, "bob")
		acct, acctToken := s.member(t, "accountant")
		s.promote(t, acct, domain.RoleAccountant)
		body := obj{"balance": "standard", "amount": 25, "reason": "deposit", "reference": "psp-42"}
		var wg sync.WaitGroup
		answers := make(chan response, 20)
		for range 20 {
			wg.Go(func() {
				answers <- s.send(http.MethodPost, "/api/v2/admin/wallets/"+alice+"/credits", body, acctToken, "Idempotency-Key", "payment-42")
			})
		}
		wg.Wait()
		close(answers)
		var first string
		for r := range answers {
			if r.status != http.StatusCreated {
				t.Fatalf("retry: %d %s", r.status, r.body)
			}
			if first == "" {
				first = r.body
			} else if r.body != first {
				t.Errorf("answers differ: %s vs %s", r.body, first)
			}
		}
		var w walletOut
		r := s.get("/api/v2/resource/wallet", aliceToken).want(t, http.StatusOK)
		r.json(t, &w)
		if w.Standard != 25 || r.header.Get("Total") != "2" {
			t.Errorf("wallet after 20 retries = %+v (%s movements); want 25 standard coins from one credit", w, r.header.Get("Total"))
		}
		s.send(http.MethodPost, "/api/v2/admin/wallets/"+bob+"/credits", body, acctToken, "Idempotency-Key", "payment-42").
			want(t, http.StatusUnprocessableEntity, "idempotency.key_reused")
		// The log keeps a keyed hash bound to the request, never the client's key.
		credits := 0
		for _, e := range s.events(t) {
			if e.Type == "WalletCredited" && e.StreamID == "user-"+alice && e.Metadata.IdempotencyKey != "" {
				credits++
			}
			if e.Metadata.IdempotencyKey == "payment-42" {
				t.Errorf("event %s carries the client's key", e.Type)
			}
		}
		if credits != 1 {
			t.Errorf("%d credits stored with the key, want 1", credits)
		}
	})
}
