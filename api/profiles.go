package api

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/gorilla/mux"

	"github.com/idlog/idlog/commands"
	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/projections"
)

// Profiles, Barong's: POST|PUT /api/v2/resource/profiles, GET /api/v2/resource/profiles/me,
// GET|PUT /api/v2/admin/profiles. A profile holds personal data; it is read from the profiles read
// model only.

// ProfileRecords reads the profiles read model (projections.UserProfilesView).
type ProfileRecords interface {
	// ByUID returns the user's profile, or an error matching projections.ErrNotFound.
	ByUID(ctx context.Context, uid string) (projections.UserProfile, error)
	// Settings returns the user's settings object, nil when none.
	Settings(ctx context.Context, uid string) (json.RawMessage, error)
	// List returns a page of profiles, newest first, and how many there are.
	List(ctx context.Context, f projections.ProfileFilter) ([]projections.UserProfile, int, error)
}

// profileJSON is Barong's Profile, with company, vat_id and locale. Empty fields are null.
type profileJSON struct {
	UID       string          `json:"uid,omitempty"` // in the admin list only
	FirstName *string         `json:"first_name"`
	LastName  *string         `json:"last_name"`
	DOB       *string         `json:"dob"`
	Address   *string         `json:"address"`
	Postcode  *string         `json:"postcode"`
	City      *string         `json:"city"`
	Country   *string         `json:"country"`
	Company   *string         `json:"company"`
	VATID     *string         `json:"vat_id"`
	Locale    *string         `json:"locale"`
	State     string          `json:"state"`
	Metadata  json.RawMessage `json:"metadata"`
	CreatedAt time.Time       `json:"created_at"`
	UpdatedAt time.Time       `json:"updated_at"`
}

func orNull(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func profileJSONOf(p projections.UserProfile) profileJSON {
	j := profileJSON{
		FirstName: orNull(p.FirstName), LastName: orNull(p.LastName), DOB: orNull(p.DOB), Address: orNull(p.Address),
		Postcode: orNull(p.Postcode), City: orNull(p.City), Country: orNull(p.Country), Company: orNull(p.Company),
		VATID: orNull(p.VATID), Locale: orNull(p.Locale), State: p.State, Metadata: p.Metadata,
		CreatedAt: p.CreatedAt.UTC(), UpdatedAt: p.UpdatedAt.UTC(),
	}
	if j.Metadata == nil {
		j.Metadata = json.RawMessage("{}")
	}
	return j
}

// profilesOf is the `profiles` array of Barong's UserWithProfile: the user's profile, or none.
func (a *accountRoutes) profilesOf(ctx context.Context, uid string) ([]profileJSON, error) {
	p, err := a.UserProfiles.ByUID(ctx, uid)
	if errors.Is(err, projections.ErrNotFound) {
		return []profileJSON{}, nil
	}
	if err != nil {
		return nil, err
	}
	return []profileJSON{profileJSONOf(p)}, nil
}

func (a *accountRoutes) registerProfiles(r, res *mux.Router) {
	get, post, put := []string{http.MethodGet, http.MethodHead}, http.MethodPost, http.MethodPut
	h := func(f http.HandlerFunc) http.Handler { return f }
	res.Handle("/profiles", h(a.createProfile)).Methods(post)
	res.Handle("/profiles", h(a.updateProfile)).Methods(put)
	res.Handle("/profiles/me", h(a.myProfile)).Methods(get...)
	route := func(f http.HandlerFunc, ability commands.Ability) http.Handler {
		return a.authn.Middleware(RequireAbility(ability)(f))
	}
	r.Handle("/api/v2/admin/profiles", route(a.adminListProfiles, commands.AbilityReadUsers)).Methods(get...)
	r.Handle("/api/v2/admin/profiles", route(a.adminReviewProfile, commands.AbilityChangeUserState)).Methods(put)
}

// profilePatch reads the profile fields a request sent; a field not sent stays nil (kept).
func profilePatch(p params) domain.ProfilePatch {
	var patch domain.ProfilePatch
	for name, field := range map[string]**string{
		"first_name": &patch.FirstName, "last_name": &patch.LastName, "dob": &patch.DOB, "address": &patch.Address,
		"postcode": &patch.Postcode, "city": &patch.City, "country": &patch.Country, "company": &patch.Company,
		"vat_id": &patch.VATID, "locale": &patch.Locale,
	} {
		if p.present(name) {
			s := p.str(name)
			*field = &s
		}
	}
	if p.present("metadata") {
		m := p.json("metadata")
		patch.Metadata = &m
	}
	return patch
}

// profileRequest reads a user's profile request, answering 400 or 422 itself when it cannot.
func (a *accountRoutes) profileRequest(w http.ResponseWriter, r *http.Request) (patch domain.ProfilePatch, submit bool, settings *json.RawMessage, ok bool) {
	p, ok := a.params(w, r)
	if !ok {
		return patch, false, nil, false
	}
	if s := p.str("confirm"); s != "" {
		var err error
		if submit, err = strconv.ParseBool(s); err != nil {
			WriteError(w, http.StatusUnprocessableEntity, scopeResourceProfile+".invalid_confirm")
			return patch, false, nil, false
		}
	}
	if p.present("settings") {
		s := p.json("settings")
		settings = &s
	}
	return profilePatch(p), submit, settings, true
}

func (a *accountRoutes) createProfile(w http.ResponseWriter, r *http.Request) {
	patch, submit, settings, ok := a.profileRequest(w, r)
	if !ok {
		return
	}
	c, _ := CallerFrom(r.Context())
	res, err := a.App.Commands.CreateProfile.Handle(r.Context(), commands.CreateProfile{
		Meta: a.meta(r), UID: uidOf(c), Profile: patch, Submit: submit, Settings: settings,
	})
	if err != nil {
		a.fail(w, r, scopeResourceProfile, err)
		return
	}
	a.profileAnswer(w, r, http.StatusCreated, scopeResourceProfile, res)
}

func (a *accountRoutes) updateProfile(w http.ResponseWriter, r *http.Request) {
	patch, submit, settings, ok := a.profileRequest(w, r)
	if !ok {
		return
	}
	c, _ := CallerFrom(r.Context())
	res, err := a.App.Commands.UpdateProfile.Handle(r.Context(), commands.UpdateProfile{
		Meta: a.meta(r), UID: uidOf(c), Profile: patch, Submit: submit, Settings: settings,
	})
	if err != nil {
		a.fail(w, r, scopeResourceProfile, err)
		return
	}
	a.profileAnswer(w, r, http.StatusOK, scopeResourceProfile, res)
}

// profileAnswer waits for the read models and answers with the profile as they show it.
func (a *accountRoutes) profileAnswer(w http.ResponseWriter, r *http.Request, status int, scope string, res commands.Result) {
	a.caughtUp(r.Context(), res.Position)
	p, err := a.UserProfiles.ByUID(r.Context(), res.Account.UID)
	if err != nil {
		if !errors.Is(err, projections.ErrNotFound) {
			writeViewError(w, r, a.log, scope, err)
			return
		}
		// Only settings changed, or the read model is late: the change is stored all the same.
		a.log.LogAttrs(r.Context(), slog.LevelWarn, "answering a profile change without the profile",
			slog.String("request_id", RequestID(r.Context())))
		WriteJSON(w, status, struct{}{})
		return
	}
	WriteJSON(w, status, profileJSONOf(p))
}

func (a *accountRoutes) myProfile(w http.ResponseWriter, r *http.Request) {
	c, _ := CallerFrom(r.Context())
	p, err := a.UserProfiles.ByUID(r.Context(), c.UID)
	if errors.Is(err, projections.ErrNotFound) {
		WriteError(w, http.StatusNotFound, scopeResourceProfile+".doesnt_exist")
		return
	}
	if err != nil {
		writeViewError(w, r, a.log, scopeResourceProfile, err)
		return
	}
	WriteJSON(w, http.StatusOK, profileJSONOf(p))
}

func (a *accountRoutes) adminListProfiles(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var f projections.ProfileFilter
	var bad []string
	if f.Page, f.Limit, bad = readPage(q.Get("page"), q.Get("limit"), scopeAdminProfile); bad != nil {
		WriteError(w, http.StatusUnprocessableEntity, bad...)
		return
	}
	list, total, err := a.UserProfiles.List(r.Context(), f)
	if err != nil {
		writeViewError(w, r, a.log, scopeAdminProfile, err)
		return
	}
	out := make([]profileJSON, len(list))
	for i, p := range list {
		out[i] = profileJSONOf(p)
		out[i].UID = p.UID
	}
	setPageHeaders(w, total, f.Page, f.Limit)
	WriteJSON(w, http.StatusOK, out)
}

func (a *accountRoutes) adminReviewProfile(w http.ResponseWriter, r *http.Request) {
	p, ok := a.params(w, r)
	if !ok || !require(w, p, scopeAdminProfile, "uid") {
		return
	}
	var state domain.ProfileState
	if s := p.str("state"); s != "" {
		var err error
		if state, err = domain.ParseProfileState(s); err != nil {
			a.fail(w, r, scopeAdminProfile, err)
			return
		}
	}
	res, err := a.App.Commands.ReviewProfile.Handle(r.Context(), commands.ReviewProfile{
		Meta: a.meta(r), UID: domain.UserID(p.str("uid")), Profile: profilePatch(p), State: state,
	})
	if err != nil {
		a.fail(w, r, scopeAdminProfile, err)
		return
	}
	a.profileAnswer(w, r, http.StatusOK, scopeAdminProfile, res)
}
