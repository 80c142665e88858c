package api_test

import (
	"net/http"
	"net/url"
	"slices"
	"testing"

	"github.com/idlog/idlog/domain"
)

type profileOut struct {
	UID       string            `json:"uid"`
	FirstName *string           `json:"first_name"`
	LastName  *string           `json:"last_name"`
	DOB       *string           `json:"dob"`
	City      *string           `json:"city"`
	Country   *string           `json:"country"`
	VATID     *string           `json:"vat_id"`
	Locale    *string           `json:"locale"`
	State     string            `json:"state"`
	Metadata  map[string]string `json:"metadata"`
}

func str(p *string) string {
	if p == nil {
		return "<null>"
	}
	return *p
}

func (s *server) put(path string, body any, token string) response {
	return s.do(request{method: http.MethodPut, path: path, body: body, token: token})
}

// profileEvents counts the stored events of the profile and settings types.
func (s *server) profileEvents(t *testing.T) int {
	t.Helper()
	n := 0
	for _, e := range s.events(t) {
		switch e.Type {
		case "ProfileCreated", "ProfileUpdated", "ProfileStateChanged", "UserSettingsChanged":
			n++
		}
	}
	return n
}

func TestProfiles(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, s *server) {
		const profiles, me = "/api/v2/resource/profiles", "/api/v2/resource/profiles/me"
		alice, aliceTok := s.staff(t, "alice", domain.RoleMember)
		bob, bobTok := s.staff(t, "bob", domain.RoleMember)
		carol, carolTok := s.staff(t, "carol", domain.RoleMember)
		_, adminTok := s.staff(t, "admin", domain.RoleAdmin)

		s.get(me, aliceTok).want(t, http.StatusNotFound, "resource.profile.doesnt_exist")
		s.put(profiles, obj{"city": "Lyon"}, aliceTok).want(t, http.StatusNotFound, "resource.profile.doesnt_exist")

		// Create: values normalised, a draft; settings kept apart.
		var p profileOut
		s.post(profiles, obj{
			"first_name": "Alice", "last_name": "Martin", "dob": "1990-04-01", "city": "Lyon", "country": "fr",
			"vat_id": "FR 12 345678901", "locale": "en-us", "metadata": `{"nick":"al"}`, "settings": obj{"theme": "dark"},
		}, aliceTok).want(t, http.StatusCreated).json(t, &p)
		if str(p.FirstName) != "Alice" || str(p.Country) != "FR" || str(p.Locale) != "en-US" || str(p.VATID) != "FR12345678901" ||
			p.State != "drafted" || p.Metadata["nick"] != "al" {
			t.Fatalf("created %+v", p)
		}
		s.post(profiles, obj{"first_name": "Again"}, aliceTok).want(t, http.StatusConflict, "resource.profile.exist")

		// A partial update keeps every field it does not send (a form body, as Barong's clients send).
		s.put(profiles, url.Values{"city": {"Paris"}}, aliceTok).want(t, http.StatusOK).json(t, &p)
		if str(p.City) != "Paris" || str(p.FirstName) != "Alice" || str(p.LastName) != "Martin" || str(p.DOB) != "1990-04-01" ||
			str(p.Country) != "FR" || p.Metadata["nick"] != "al" {
			t.Fatalf("after a partial update %+v", p)
		}

		// Bad input: 422 with the field's code, and no event.
		before := s.profileEvents(t)
		for _, c := range []struct {
			body obj
			code string
		}{
			{obj{"country": "XX"}, "resource.profile.invalid_country"},
			{obj{"country": "UK"}, "resource.profile.invalid_country"},
			{obj{"country": "FRA"}, "resource.profile.invalid_country"},
			{obj{"dob": "2990-01-01"}, "resource.profile.invalid_dob"},
			{obj{"locale": "not a tag"}, "resource.profile.invalid_locale"},
			{obj{"vat_id": "12"}, "resource.profile.invalid_vat_id"},
			{obj{"metadata": "[1]"}, "resource.profile.invalid_metadata"},
			{obj{"settings": "[1]"}, "resource.profile.invalid_settings"},
			{obj{"confirm": "maybe"}, "resource.profile.invalid_confirm"},
		} {
			s.put(profiles, c.body, aliceTok).want(t, http.StatusUnprocessableEntity, c.code)
		}
		s.post(profiles, obj{"first_name": "Bob", "country": "XX"}, bobTok).want(t, http.StatusUnprocessableEntity, "resource.profile.invalid_country")
		if after := s.profileEvents(t); after != before {
			t.Fatalf("rejected requests appended %d profile events", after-before)
		}
		s.get(me, bobTok).want(t, http.StatusNotFound, "resource.profile.doesnt_exist")

		// confirm=true submits; a submitted profile is no longer the user's to edit, their settings are.
		s.put(profiles, obj{"confirm": true}, aliceTok).want(t, http.StatusOK).json(t, &p)
		if p.State != "submitted" {
			t.Fatalf("after confirm: %+v", p)
		}
		before = s.profileEvents(t)
		s.put(profiles, obj{"city": "Nice"}, aliceTok).want(t, http.StatusUnprocessableEntity, "resource.profile.not_editable")
		if after := s.profileEvents(t); after != before {
			t.Fatal("a refused edit appended events")
		}
		s.put(profiles, obj{"settings": obj{"theme": "light"}}, aliceTok).want(t, http.StatusOK)
		s.get(me, aliceTok).want(t, http.StatusOK).json(t, &p)
		if str(p.City) != "Paris" || p.State != "submitted" {
			t.Fatalf("profile after the refused edit: %+v", p)
		}

		// Administrators review: members may not.
		s.get("/api/v2/admin/profiles", aliceTok).want(t, http.StatusForbidden)
		s.put("/api/v2/admin/profiles", obj{"uid": alice, "state": "verified"}, aliceTok).want(t, http.StatusForbidden)
		s.put("/api/v2/admin/profiles", obj{"uid": alice, "state": "approved"}, adminTok).want(t, http.StatusUnprocessableEntity, "admin.profile.invalid_state")
		s.put("/api/v2/admin/profiles", obj{"uid": bob, "state": "verified"}, adminTok).want(t, http.StatusNotFound, "admin.profile.doesnt_exist")
		s.put("/api/v2/admin/profiles", obj{"state": "verified"}, adminTok).want(t, http.StatusUnprocessableEntity, "admin.profile.missing_uid")
		s.put("/api/v2/admin/profiles", obj{"uid": alice, "state": "verified"}, adminTok).want(t, http.StatusOK).json(t, &p)
		if p.State != "verified" || str(p.FirstName) != "Alice" {
			t.Fatalf("verified: %+v", p)
		}
		s.post(profiles, obj{"first_name": "Bob", "last_name": "Stone", "country": "DE"}, bobTok).want(t, http.StatusCreated)
		s.put(profiles, obj{"confirm": "true"}, bobTok).want(t, http.StatusOK)
		s.put("/api/v2/admin/profiles", obj{"uid": bob, "state": "rejected"}, adminTok).want(t, http.StatusOK).json(t, &p)
		if p.State != "rejected" {
			t.Fatalf("rejected: %+v", p)
		}
		// A rejected profile is replaced by a new one, as in Barong.
		s.post(profiles, obj{"first_name": "Robert", "country": "de"}, bobTok).want(t, http.StatusCreated).json(t, &p)
		if p.State != "drafted" || str(p.FirstName) != "Robert" || p.LastName != nil {
			t.Fatalf("new profile after rejection: %+v", p)
		}
		s.post(profiles, obj{"first_name": "alice", "last_name": "Durand", "country": "DE"}, carolTok).want(t, http.StatusCreated)

		var list []profileOut
		r := s.get("/api/v2/admin/profiles?limit=2", adminTok).want(t, http.StatusOK)
		r.json(t, &list)
		if len(list) != 2 || r.header.Get("Total") != "3" || list[0].UID != carol || list[1].UID != bob {
			t.Fatalf("admin profiles page: total %s, %+v", r.header.Get("Total"), list)
		}

		// The admin user list filters by the profile's names and country, and only by them.
		for _, c := range []struct {
			query string
			want  []string
		}{
			{"first_name=ALICE", []string{carol, alice}},
			{"first_name=Alice&country=fr", []string{alice}},
			{"last_name=durand", []string{carol}},
			{"country=DE", []string{carol, bob}},
			{"country=JP", nil},
		} {
			var users []struct{ UID string }
			s.get("/api/v2/admin/users?"+c.query, adminTok).want(t, http.StatusOK).json(t, &users)
			var got []string
			for _, u := range users {
				got = append(got, u.UID)
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("admin users ?%s = %v, want %v", c.query, got, c.want)
			}
		}

		// /users/me and the admin user view show the profile (Barong's UserWithProfile) and the
		// settings.
		var meOut struct {
			UID      string
			Profiles []profileOut
			Settings map[string]string
		}
		s.get("/api/v2/resource/users/me", aliceTok).want(t, http.StatusOK).json(t, &meOut)
		if len(meOut.Profiles) != 1 || str(meOut.Profiles[0].FirstName) != "Alice" || meOut.Profiles[0].State != "verified" ||
			meOut.Settings["theme"] != "light" {
			t.Fatalf("/users/me: %+v", meOut)
		}
		s.get("/api/v2/resource/users/me", s.signIn(t, "admin@example.com", "")).want(t, http.StatusOK).json(t, &meOut)
		if meOut.Profiles == nil || len(meOut.Profiles) != 0 {
			t.Fatalf("/users/me without a profile: %+v", meOut)
		}
		var detail struct {
			adminUserOut
			Profiles []profileOut
		}
		s.get("/api/v2/admin/users/"+alice, adminTok).want(t, http.StatusOK).json(t, &detail)
		if len(detail.Profiles) != 1 || str(detail.Profiles[0].City) != "Paris" {
			t.Fatalf("admin user view: %+v", detail.Profiles)
		}
		// The activity log has each step, without the profile's values.
		var actions []string
		for _, a := range detail.Activity {
			actions = append(actions, a.Action)
		}
		for _, want := range []string{"create_profile", "update_profile", "change_profile_state", "change_settings"} {
			if !slices.Contains(actions, want) {
				t.Errorf("activity %v lacks %s", actions, want)
			}
		}
		if !slices.ContainsFunc(detail.AdminActivity, func(a struct {
			UID       string `json:"uid"`
			TargetUID string `json:"target_uid"`
			Topic     string `json:"topic"`
			Action    string `json:"action"`
		}) bool {
			return a.Action == "change_profile_state" && a.TargetUID == alice
		}) {
			t.Errorf("admin activity %+v lacks the review", detail.AdminActivity)
		}
	})
}
