package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/eventstore"
)

// appendSystem appends events to a user's stream as the operator's command line would, and waits
// for the read models to show them.
func (s *server) appendSystem(t *testing.T, uid string, events ...domain.Event) {
	t.Helper()
	var out []eventstore.NewEvent
	for _, e := range events {
		data, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, eventstore.NewEvent{Type: e.EventType(), SchemaVersion: 1, Data: data, Metadata: eventstore.Metadata{ActorUID: eventstore.ActorSystem}})
	}
	res, err := s.store.Append(context.Background(), eventstore.Append{Stream: domain.UserID(uid).Stream(), Expected: eventstore.Any, Events: out})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.runtime.WaitFor(ctx, res.LastPosition); err != nil {
		t.Fatal(err)
	}
}

// caughtUp waits for the read models to reach the end of the log.
func (s *server) caughtUp(t *testing.T) {
	t.Helper()
	events := s.events(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.runtime.WaitFor(ctx, events[len(events)-1].GlobalPosition); err != nil {
		t.Fatal(err)
	}
}

// staff signs up a user, gives them a role and signs them in; it returns the uid and a token.
func (s *server) staff(t *testing.T, name string, role domain.Role) (uid, token string) {
	t.Helper()
	uid = s.signUp(t, name+"@example.com", "")
	if role != domain.RoleMember {
		s.promote(t, uid, role)
	}
	return uid, s.signIn(t, name+"@example.com", "")
}

type adminUserOut struct {
	UID, Email, Role, State string
	Username                *string
	Level                   int
	OTP                     bool
	LoginDisabled           bool            `json:"login_disabled"`
	Data                    json.RawMessage `json:"data"`
	Labels                  *[]labelOut     `json:"labels"`
	Wallet                  *struct{ Free, Standard int64 }
	Activity                []struct {
		UID, TargetUID, Topic, Action string
	} `json:"activity"`
	AdminActivity []struct {
		UID       string `json:"uid"`
		TargetUID string `json:"target_uid"`
		Topic     string `json:"topic"`
		Action    string `json:"action"`
	} `json:"admin_activity"`
}

// adminRoute is one admin route, called on a fresh target user.
type adminRoute struct {
	name    string
	allowed []string // roles that may call it; the others get 403
	status  int      // the answer to an allowed caller
	call    func(s *server, target, token string, n int) response
}

var adminRoutes = []adminRoute{
	{"GET /users", []string{"superadmin", "admin", "accountant", "compliance", "support", "auditor"}, http.StatusOK,
		func(s *server, _, token string, _ int) response { return s.get("/api/v2/admin/users", token) }},
	{"GET /users/{uid}", []string{"superadmin", "admin", "accountant", "compliance", "support", "auditor"}, http.StatusOK,
		func(s *server, target, token string, _ int) response {
			return s.get("/api/v2/admin/users/"+target, token)
		}},
	{"GET /metrics", []string{"superadmin", "admin", "accountant", "compliance", "auditor"}, http.StatusOK,
		func(s *server, _, token string, _ int) response { return s.get("/api/v2/admin/metrics", token) }},
	{"POST /users", []string{"superadmin", "admin"}, http.StatusCreated,
		func(s *server, _, token string, n int) response {
			return s.post("/api/v2/admin/users", obj{"email": fmt.Sprintf("made%d@example.com", n), "password": password, "role": "support"}, token)
		}},
	{"PUT /users state", []string{"superadmin", "admin", "compliance"}, http.StatusOK,
		func(s *server, target, token string, _ int) response {
			return s.send(http.MethodPut, "/api/v2/admin/users", obj{"uid": target, "state": "banned"}, token)
		}},
	{"PUT /users otp", []string{"superadmin", "admin", "support"}, http.StatusOK,
		func(s *server, target, token string, _ int) response {
			return s.send(http.MethodPut, "/api/v2/admin/users", obj{"uid": target, "otp": false}, token)
		}},
	{"POST /users/role", []string{"superadmin", "admin"}, http.StatusCreated,
		func(s *server, target, token string, _ int) response {
			return s.post("/api/v2/admin/users/role", obj{"uid": target, "role": "accountant"}, token)
		}},
	{"PUT /users/{uid}/login", []string{"superadmin", "admin", "compliance"}, http.StatusOK,
		func(s *server, target, token string, _ int) response {
			return s.send(http.MethodPut, "/api/v2/admin/users/"+target+"/login", obj{"enabled": false}, token)
		}},
	{"DELETE /users/{uid}/sessions", []string{"superadmin", "admin", "compliance"}, http.StatusNoContent,
		func(s *server, target, token string, _ int) response {
			return s.send(http.MethodDelete, "/api/v2/admin/users/"+target+"/sessions", nil, token)
		}},
	{"DELETE /users/{uid}", []string{"superadmin", "admin"}, http.StatusNoContent,
		func(s *server, target, token string, _ int) response {
			return s.send(http.MethodDelete, "/api/v2/admin/users/"+target, nil, token)
		}},
}

// Every admin route, called by every role: the roles of the table pass, the others get 403 and
// change nothing; members and auditors never change anything.
func TestAdminRoutesCheckTheRoleTable(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, s *server) {
		tokens := map[string]string{}
		for _, r := range domain.Roles() {
			_, tokens[r.String()] = s.staff(t, "staff-"+r.String(), r)
		}
		n := 0
		for _, route := range adminRoutes {
			for _, r := range domain.Roles() {
				role := r.String()
				n++
				target := s.signUp(t, fmt.Sprintf("target%d@example.com", n), "")
				s.appendSystem(t, target, domain.OTPEnabled{Step: 1}) // so that otp=false has something to turn off
				before := len(s.events(t))
				got := route.call(s, target, tokens[role], n)
				allowed := slices.Contains(route.allowed, role)
				switch {
				case allowed && got.status != route.status:
					t.Errorf("%s as %s: %d %s, want %d", route.name, role, got.status, got.body, route.status)
				case !allowed && (got.status != http.StatusForbidden || !strings.Contains(got.body, `"admin.ability.not_permitted"`)):
					t.Errorf("%s as %s: %d %s, want 403 admin.ability.not_permitted", route.name, role, got.status, got.body)
				case !allowed && len(s.events(t)) != before:
					t.Errorf("%s as %s: refused, yet the log grew", route.name, role)
				}
				if (role == "member" || role == "auditor") && len(s.events(t)) != before {
					t.Errorf("%s as %s changed something", route.name, role)
				}
			}
		}
		// Without a token, every route is 401.
		for _, route := range adminRoutes {
			if got := route.call(s, "ID0000000001", "", 0); got.status != http.StatusUnauthorized {
				t.Errorf("%s without a token: %d, want 401", route.name, got.status)
			}
		}
	})
}

// Who may act on whom: nobody on their own account, an admin neither makes nor touches a
// superadmin, and a superadmin may.
func TestAdminRoleRules(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, s *server) {
		super, superToken := s.staff(t, "super", domain.RoleSuperAdmin)
		admin, adminToken := s.staff(t, "admin", domain.RoleAdmin)
		bob := s.signUp(t, "bob@example.com", "")
		denied := func(r response) { t.Helper(); r.want(t, http.StatusForbidden, "admin.ability.not_permitted") }

		denied(s.post("/api/v2/admin/users/role", obj{"uid": admin, "role": "support"}, adminToken))
		denied(s.post("/api/v2/admin/users/role", obj{"uid": super, "role": "admin"}, superToken))
		denied(s.post("/api/v2/admin/users/role", obj{"uid": bob, "role": "superadmin"}, adminToken))
		denied(s.post("/api/v2/admin/users/role", obj{"uid": super, "role": "member"}, adminToken))
		denied(s.send(http.MethodPut, "/api/v2/admin/users", obj{"uid": super, "state": "banned"}, adminToken))
		denied(s.send(http.MethodPut, "/api/v2/admin/users", obj{"uid": admin, "state": "locked"}, adminToken))
		denied(s.send(http.MethodDelete, "/api/v2/admin/users/"+super, nil, adminToken))
		denied(s.post("/api/v2/admin/users", obj{"email": "new@example.com", "password": password, "role": "superadmin"}, adminToken))

		var u adminUserOut
		s.post("/api/v2/admin/users/role", obj{"uid": bob, "role": "superadmin"}, superToken).want(t, http.StatusCreated).json(t, &u)
		if u.UID != bob || u.Role != "superadmin" {
			t.Errorf("bob after the grant = %+v", u)
		}
		s.post("/api/v2/admin/users/role", obj{"uid": bob, "role": "superadmin"}, superToken).want(t, http.StatusUnprocessableEntity, "admin.user.no_change_provided")
		s.post("/api/v2/admin/users/role", obj{"uid": bob, "role": "king"}, superToken).want(t, http.StatusUnprocessableEntity, "admin.user.invalid_role")
		s.post("/api/v2/admin/users/role", obj{"uid": "bob", "role": "admin"}, superToken).want(t, http.StatusUnprocessableEntity, "admin.user.invalid_uid")
		s.post("/api/v2/admin/users/role", obj{"uid": "ID0000000000", "role": "admin"}, superToken).want(t, http.StatusNotFound, "admin.user.doesnt_exist")
		s.post("/api/v2/admin/users/role", obj{"uid": bob}, superToken).want(t, http.StatusUnprocessableEntity, "admin.user.missing_role")
		s.send(http.MethodPut, "/api/v2/admin/users", obj{"uid": bob}, superToken).want(t, http.StatusUnprocessableEntity, "admin.user.missing_state_or_otp")
		s.send(http.MethodPut, "/api/v2/admin/users", obj{"uid": bob, "state": "asleep"}, superToken).want(t, http.StatusUnprocessableEntity, "admin.user.invalid_state")
		s.send(http.MethodPut, "/api/v2/admin/users", obj{"uid": bob, "otp": true}, superToken).want(t, http.StatusUnprocessableEntity, "admin.user.invalid_otp")
		s.send(http.MethodPut, "/api/v2/admin/users/"+bob+"/login", obj{"enabled": "maybe"}, superToken).want(t, http.StatusUnprocessableEntity, "admin.user.invalid_enabled")
		s.get("/api/v2/admin/users/ID0000000000", superToken).want(t, http.StatusNotFound, "admin.user.doesnt_exist")

		// Support may reset 2FA and not change a state: asking for both changes nothing.
		_, supportToken := s.staff(t, "support", domain.RoleSupport)
		carol := s.signUp(t, "carol@example.com", "")
		s.appendSystem(t, carol, domain.OTPEnabled{Step: 1})
		before := len(s.events(t))
		denied(s.send(http.MethodPut, "/api/v2/admin/users", obj{"uid": carol, "state": "banned", "otp": false}, supportToken))
		if len(s.events(t)) != before {
			t.Error("a refused PUT /admin/users changed something")
		}
		s.send(http.MethodPut, "/api/v2/admin/users", obj{"uid": carol, "otp": "false"}, supportToken).want(t, http.StatusOK).json(t, &u)
		if u.OTP || u.State != "active" {
			t.Errorf("carol after the 2FA reset = %+v", u)
		}
	})
}

// A ban ends the user's sessions at once: the live token is refused on its next request. Turning
// sign-in off does the same and leaves the state alone.
func TestAdminBanInvalidatesALiveToken(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, s *server) {
		_, adminToken := s.staff(t, "admin", domain.RoleCompliance)
		bob, bobToken := s.member(t, "bob")
		s.get("/api/v2/resource/users/me", bobToken).want(t, http.StatusOK)

		var u adminUserOut
		s.send(http.MethodPut, "/api/v2/admin/users", obj{"uid": bob, "state": "banned", "reason": "fraud"}, adminToken).want(t, http.StatusOK).json(t, &u)
		if u.State != "banned" {
			t.Errorf("answer after the ban = %+v", u)
		}
		s.get("/api/v2/resource/users/me", bobToken).want(t, http.StatusUnauthorized, "authz.invalid_session")
		s.post("/api/v2/identity/sessions", obj{"login": "bob@example.com", "password": password}, "").want(t, http.StatusUnauthorized, "identity.session.not_active")
		s.send(http.MethodPut, "/api/v2/admin/users", obj{"uid": bob, "state": "active"}, adminToken).want(t, http.StatusOK)

		// Sign-in off: the new token dies, the state stays active, sign-in is refused until it is on.
		bobToken = s.signIn(t, "bob@example.com", "")
		s.send(http.MethodPut, "/api/v2/admin/users/"+bob+"/login", obj{"enabled": false}, adminToken).want(t, http.StatusOK).json(t, &u)
		if u.State != "active" || !u.LoginDisabled {
			t.Errorf("answer after disabling sign-in = %+v", u)
		}
		s.get("/api/v2/resource/users/me", bobToken).want(t, http.StatusUnauthorized, "authz.invalid_session")
		s.post("/api/v2/identity/sessions", obj{"login": "bob@example.com", "password": password}, "").want(t, http.StatusUnauthorized, "identity.session.not_active")
		s.send(http.MethodPut, "/api/v2/admin/users/"+bob+"/login", obj{"enabled": false}, adminToken).want(t, http.StatusUnprocessableEntity, "admin.user.no_change_provided")
		s.send(http.MethodPut, "/api/v2/admin/users/"+bob+"/login", url.Values{"enabled": {"true"}}, adminToken).want(t, http.StatusOK).json(t, &u)
		if u.LoginDisabled {
			t.Errorf("answer after enabling sign-in = %+v", u)
		}
		s.get("/api/v2/resource/users/me", s.signIn(t, "bob@example.com", "")).want(t, http.StatusOK)
	})
}

// Deleting a user closes the account: sessions end, the read models forget them, and their email
// and username can register again as a new user who shares nothing with the old one; the old
// history stays in the log.
func TestAdminDeleteReleasesTheEmail(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, s *server) {
		admin, adminToken := s.staff(t, "admin", domain.RoleAdmin)
		old := s.signUp(t, "bob@example.com", "bob")
		oldToken := s.signIn(t, "bob", "")
		s.post("/api/v2/admin/users/labels", obj{"uid": old, "key": "kyc", "value": "verified", "scope": "private"}, adminToken).want(t, http.StatusCreated)
		s.post("/api/v2/admin/users/role", obj{"uid": old, "role": "accountant"}, adminToken).want(t, http.StatusCreated)

		s.send(http.MethodDelete, "/api/v2/admin/users/"+old, nil, adminToken).want(t, http.StatusNoContent)
		s.get("/api/v2/resource/users/me", oldToken).want(t, http.StatusUnauthorized, "authz.invalid_session")
		s.get("/api/v2/admin/users/"+old, adminToken).want(t, http.StatusNotFound, "admin.user.doesnt_exist")
		s.send(http.MethodDelete, "/api/v2/admin/users/"+old, nil, adminToken).want(t, http.StatusNotFound, "admin.user.doesnt_exist")
		s.send(http.MethodPut, "/api/v2/admin/users", obj{"uid": old, "state": "active"}, adminToken).want(t, http.StatusNotFound, "admin.user.doesnt_exist")
		var list []adminUserOut
		r := s.get("/api/v2/admin/users?email=bob@example.com", adminToken).want(t, http.StatusOK)
		r.json(t, &list)
		if len(list) != 0 || r.header.Get("Total") != "0" {
			t.Errorf("the closed user is still listed: %s (Total %s)", r.body, r.header.Get("Total"))
		}

		fresh := s.signUp(t, "bob@example.com", "bob")
		if fresh == old {
			t.Fatal("the new account got the old id")
		}
		freshToken := s.signIn(t, "bob", "")
		var u adminUserOut
		s.get("/api/v2/admin/users/"+fresh, adminToken).want(t, http.StatusOK).json(t, &u)
		if u.Role != "member" || u.State != "active" || u.Labels == nil || len(*u.Labels) != 0 || u.Wallet == nil {
			t.Errorf("the new account = %+v; want a plain member with no label", u)
		}
		for _, a := range u.Activity {
			if !slices.Contains([]string{"signup", "credit", "request_email_verification", "login"}, a.Action) {
				t.Errorf("the new account's activity holds %+v", a)
			}
		}
		if len(u.AdminActivity) != 0 {
			t.Errorf("the new account's admin activity = %+v, want none", u.AdminActivity)
		}
		s.get("/api/v2/resource/users/me", oldToken).want(t, http.StatusUnauthorized, "authz.invalid_session")
		var me struct{ UID string }
		s.get("/api/v2/resource/users/me", freshToken).want(t, http.StatusOK).json(t, &me)
		if me.UID != fresh {
			t.Errorf("the new token is %s's, want %s", me.UID, fresh)
		}
		r = s.get("/api/v2/admin/users?username=bob", adminToken).want(t, http.StatusOK)
		r.json(t, &list)
		if len(list) != 1 || list[0].UID != fresh || r.header.Get("Total") != "1" {
			t.Errorf("username bob lists %s, want only %s", r.body, fresh)
		}

		// The old history stays, ending with the closure by the admin.
		var oldTypes []string
		var closedBy string
		for _, e := range s.events(t) {
			if e.StreamID == domain.UserID(old).Stream() {
				oldTypes = append(oldTypes, e.Type)
				if e.Type == "AccountClosed" {
					closedBy = e.Metadata.ActorUID
				}
			}
		}
		if !slices.Contains(oldTypes, "UserRegistered") || !slices.Contains(oldTypes, "LabelAdded") || closedBy != admin {
			t.Errorf("old stream %v, closed by %q; want its history and the closure by %s", oldTypes, closedBy, admin)
		}
	})
}

// Every admin action shows in the admin activity log: the administrator acts, the user is the target.
func TestAdminActionsAreInTheActivityLog(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, s *server) {
		admin, adminToken := s.staff(t, "admin", domain.RoleAdmin)
		var made adminUserOut
		s.post("/api/v2/admin/users", obj{"email": "Carol@Example.com", "password": password, "username": "carol", "role": "support"}, adminToken).
			want(t, http.StatusCreated).json(t, &made)
		if made.Email != "carol@example.com" || made.Role != "support" || made.Username == nil || *made.Username != "carol" {
			t.Errorf("created user = %+v", made)
		}
		s.post("/api/v2/admin/users", obj{"email": "carol@example.com", "password": password}, adminToken).want(t, http.StatusConflict, "admin.user.email_taken")
		s.post("/api/v2/admin/users", obj{"email": "dave@example.com"}, adminToken).want(t, http.StatusUnprocessableEntity, "admin.user.missing_password")
		carol := made.UID
		s.appendSystem(t, carol, domain.OTPEnabled{Step: 1})
		for _, step := range []struct {
			method, path string
			body         obj
		}{
			{http.MethodPut, "/api/v2/admin/users", obj{"uid": carol, "state": "locked"}},
			{http.MethodPut, "/api/v2/admin/users", obj{"uid": carol, "state": "active", "otp": false}},
			{http.MethodPost, "/api/v2/admin/users/role", obj{"uid": carol, "role": "compliance"}},
			{http.MethodPut, "/api/v2/admin/users/" + carol + "/login", obj{"enabled": false}},
			{http.MethodPut, "/api/v2/admin/users/" + carol + "/login", obj{"enabled": true}},
		} {
			if r := s.send(step.method, step.path, step.body, adminToken); r.status >= 300 {
				t.Fatalf("%s %s: %d %s", step.method, step.path, r.status, r.body)
			}
		}
		var u adminUserOut
		s.get("/api/v2/admin/users/"+carol, adminToken).want(t, http.StatusOK).json(t, &u)
		var got []string
		for _, a := range u.AdminActivity {
			if a.UID != admin || a.TargetUID != carol || a.Topic != "admin" {
				t.Errorf("admin row %+v, want uid %s, target %s, topic admin", a, admin, carol)
			}
			got = append(got, a.Action)
		}
		want := []string{"enable_login", "disable_login", "change_role", "disable", "change_state", "change_state", "request_email_verification", "credit", "signup"}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("admin actions on carol = %v, want %v", got, want)
		}
		if u.State != "active" || u.Role != "compliance" || u.OTP || u.LoginDisabled {
			t.Errorf("carol = %+v", u)
		}
	})
}

// Barong's pagination headers at the edges, the filters, and the extended view.
func TestAdminListUsers(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, s *server) {
		admin, adminToken := s.staff(t, "admin", domain.RoleAuditor)
		var uids []string
		for i := range 4 {
			uids = append(uids, s.signUp(t, fmt.Sprintf("user%d@example.com", i), fmt.Sprintf("user%d", i)))
		}
		s.appendSystem(t, uids[1], domain.OTPEnabled{Step: 1}, domain.UserStateChanged{From: domain.StateActive, To: domain.StateLocked})
		s.appendSystem(t, uids[2], domain.RoleChanged{From: domain.RoleMember, To: domain.RoleSupport},
			domain.UserDataUpdated{Data: json.RawMessage(`{"lang":"fr"}`)})
		all := append([]string{admin}, uids...) // 5 users, newest last
		slices.Reverse(all)

		list := func(query string) ([]string, http.Header) {
			t.Helper()
			r := s.get("/api/v2/admin/users"+query, adminToken).want(t, http.StatusOK)
			var us []adminUserOut
			r.json(t, &us)
			var got []string
			for _, u := range us {
				got = append(got, u.UID)
			}
			return got, r.header
		}
		for _, c := range []struct {
			query, total, page, perPage string
			want                        []string
		}{
			{"", "5", "1", "100", all},
			{"?limit=2", "5", "1", "2", all[:2]},
			{"?limit=2&page=3", "5", "3", "2", all[4:]}, // the last page, short
			{"?limit=2&page=4", "5", "4", "2", nil},     // past the end: empty, the total still said
			{"?limit=100", "5", "1", "100", all},
			{"?limit=1&page=5", "5", "5", "1", all[4:]},
			{"?role=support", "1", "1", "100", []string{uids[2]}},
			{"?state=locked", "1", "1", "100", []string{uids[1]}},
			{"?otp=true", "1", "1", "100", []string{uids[1]}},
			{"?username=USER3", "1", "1", "100", []string{uids[3]}},
			{"?email=user0@example.com", "1", "1", "100", []string{uids[0]}},
			{"?uid=" + uids[0], "1", "1", "100", []string{uids[0]}},
			{"?level=0&role=member&state=active", "2", "1", "100", []string{uids[3], uids[0]}},
			{"?role=admin", "0", "1", "100", nil},
		} {
			got, h := list(c.query)
			if !slices.Equal(got, c.want) || h.Get("Total") != c.total || h.Get("Page") != c.page || h.Get("Per-Page") != c.perPage {
				t.Errorf("%q: %v (Total %s, Page %s, Per-Page %s); want %v (%s, %s, %s)", c.query, got, h.Get("Total"), h.Get("Page"),
					h.Get("Per-Page"), c.want, c.total, c.page, c.perPage)
			}
		}
		for query, code := range map[string]string{
			"?limit=101":      "admin.user.invalid_limit",
			"?limit=0":        "admin.user.invalid_limit",
			"?page=-1":        "admin.user.invalid_page",
			"?role=king":      "admin.user.invalid_role",
			"?state=asleep":   "admin.user.invalid_state",
			"?otp=maybe":      "admin.user.invalid_otp",
			"?level=x":        "admin.user.invalid_level",
			"?from=yesterday": "admin.user.invalid_from",
			"?uid=bob":        "admin.user.invalid_uid",
			"?extended=very":  "admin.user.invalid_extended",
		} {
			s.get("/api/v2/admin/users"+query, adminToken).want(t, http.StatusUnprocessableEntity, code)
		}

		// The plain list leaves out data and labels; extended=true adds them.
		var us []adminUserOut
		s.get("/api/v2/admin/users?uid="+uids[2], adminToken).want(t, http.StatusOK).json(t, &us)
		if us[0].Data != nil || us[0].Labels != nil {
			t.Errorf("plain list = %+v", us[0])
		}
		s.get("/api/v2/admin/users?extended=true&uid="+uids[2], adminToken).want(t, http.StatusOK).json(t, &us)
		if string(us[0].Data) != `{"lang":"fr"}` || us[0].Labels == nil {
			t.Errorf("extended list = %+v", us[0])
		}
	})
}

func TestAdminMetrics(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, s *server) {
		start := time.Now().Add(-time.Second).Unix()
		_, adminToken := s.staff(t, "admin", domain.RoleAccountant) // a sign-up and a sign-in
		s.member(t, "alice")                                        // another of each
		s.signIn(t, "alice@example.com", "")
		s.post("/api/v2/identity/sessions", obj{"login": "alice@example.com", "password": "wrong password, twice"}, "").want(t, http.StatusUnauthorized)
		s.caughtUp(t) // a failed sign-in answers without waiting for the read models
		var m struct {
			CreatedFrom      time.Time `json:"created_from"`
			CreatedTo        time.Time `json:"created_to"`
			Signups          int       `json:"signups"`
			SuccessfulLogins int       `json:"successful_logins"`
			FailedLogins     int       `json:"failed_logins"`
			ActiveUsers      int       `json:"active_users"`
		}
		end := time.Now().Add(time.Hour).Unix()
		s.get(fmt.Sprintf("/api/v2/admin/metrics?created_from=%d&created_to=%d", start, end), adminToken).want(t, http.StatusOK).json(t, &m)
		if m.Signups != 2 || m.SuccessfulLogins != 3 || m.FailedLogins != 1 || m.ActiveUsers != 2 || m.CreatedFrom.Unix() != start || m.CreatedTo.Unix() != end {
			t.Errorf("metrics = %+v", m)
		}
		s.get("/api/v2/admin/metrics", adminToken).want(t, http.StatusOK).json(t, &m) // the last 24 hours
		if m.Signups != 2 || m.CreatedTo.Sub(m.CreatedFrom) != 24*time.Hour {
			t.Errorf("default period = %+v", m)
		}
		s.get(fmt.Sprintf("/api/v2/admin/metrics?created_from=%d&created_to=%d", end, start), adminToken).want(t, http.StatusUnprocessableEntity, "admin.metrics.invalid_from")
		s.get("/api/v2/admin/metrics?created_from=monday", adminToken).want(t, http.StatusUnprocessableEntity, "admin.metrics.invalid_created_from")
	})
}
