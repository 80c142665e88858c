package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/gorilla/mux"

	"github.com/idlog/idlog/commands"
	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/projections"
)

// Label routes: the signed-in user's own labels under /api/v2/resource/labels, every user's under
// /api/v2/admin/users/labels, and the level ladder at /api/v2/admin/levels.

// Scopes of the label routes.
const (
	scopeResourceLabels = "resource.labels"
	scopeAdminLabels    = "admin.labels"
	scopeAdminLevels    = "admin.levels"
)

// Roles of the admin label routes, from the role table: those who change labels, and those who may
// also read them.
var (
	labelWriters = commands.RolesWith(commands.AbilityWriteLabels)
	labelReaders = commands.RolesWith(commands.AbilityReadLabels)
)

// ErrLabelNotFound: the labels read model shows no such label of the user (yet).
var ErrLabelNotFound = errors.New("api: label not found")

// Labels is the labels read model the label routes read; *projections.LabelsView is one.
type Labels interface {
	// ForUser lists the user's labels, by key, public before private.
	ForUser(ctx context.Context, uid string) ([]projections.UserLabel, error)
	// Users returns a page of the users holding a label, newest first, and how many in all; a
	// filter out of range is a *projections.FilterError.
	Users(ctx context.Context, f projections.LabelFilter) ([]projections.User, int, error)
	// Keys lists the labels in use, with how many users hold each.
	Keys(ctx context.Context) ([]projections.LabelCount, error)
}

// labelJSON is Barong's label object.
type labelJSON struct {
	Key         string     `json:"key"`
	Value       string     `json:"value"`
	Scope       string     `json:"scope"`
	Description string     `json:"description,omitempty"`
	CreatedAt   *time.Time `json:"created_at"`
	UpdatedAt   *time.Time `json:"updated_at"`
}

func labelJSONOf(l projections.UserLabel) labelJSON {
	j := labelJSON{Key: l.Key, Value: l.Value, Scope: l.Scope, Description: l.Description}
	if !l.CreatedAt.IsZero() {
		c, u := l.CreatedAt.UTC(), l.UpdatedAt.UTC()
		j.CreatedAt, j.UpdatedAt = &c, &u
	}
	return j
}

func labelsJSON(ls []projections.UserLabel) []labelJSON {
	out := make([]labelJSON, len(ls))
	for i, l := range ls {
		out[i] = labelJSONOf(l)
	}
	return out
}

// registerLabels adds the label routes; res is the signed-in /api/v2/resource subrouter.
func (a *accountRoutes) registerLabels(r, res *mux.Router) {
	get, post, put, patch, del := []string{http.MethodGet, http.MethodHead}, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete
	h := func(f http.HandlerFunc) http.Handler { return f }
	res.Handle("/labels", h(a.myLabels)).Methods(get...)
	res.Handle("/labels", h(a.addMyLabel)).Methods(post)
	res.Handle("/labels/{key}", h(a.myLabel)).Methods(get...)
	res.Handle("/labels/{key}", h(a.updateMyLabel)).Methods(patch)
	res.Handle("/labels/{key}", h(a.removeMyLabel)).Methods(del)

	writers := func(f http.HandlerFunc) http.Handler {
		return a.authn.Middleware(RequireRole(labelWriters...)(f))
	}
	readers := func(f http.HandlerFunc) http.Handler { return a.authn.Middleware(RequireRole(labelReaders...)(f)) }
	r.Handle("/api/v2/admin/users/labels/list", readers(a.labelKeys)).Methods(get...)
	r.Handle("/api/v2/admin/users/labels/update", writers(a.adminSetLabel)).Methods(post)
	r.Handle("/api/v2/admin/users/labels", readers(a.usersWithLabel)).Methods(get...)
	r.Handle("/api/v2/admin/users/labels", writers(a.adminAddLabel)).Methods(post)
	r.Handle("/api/v2/admin/users/labels", writers(a.adminUpdateLabel)).Methods(put)
	r.Handle("/api/v2/admin/users/labels", writers(a.adminRemoveLabel)).Methods(del)
	r.Handle("/api/v2/admin/levels", readers(a.levels)).Methods(get...)
}

// labelAnswer waits for the read models and answers with the user's label (key, scope) as they
// show it, or as the command left it if they are late.
func (a *accountRoutes) labelAnswer(w http.ResponseWriter, r *http.Request, errScope string, status int, res commands.Result, key string, scope domain.LabelScope) {
	a.caughtUp(r.Context(), res.Position)
	ls, err := a.Labels.ForUser(r.Context(), res.Account.UID)
	if err != nil {
		a.fail(w, r, errScope, err)
		return
	}
	for _, l := range ls {
		if l.Key == key && l.Scope == scope.String() {
			WriteJSON(w, status, labelJSONOf(l))
			return
		}
	}
	for _, l := range res.Account.Labels {
		if l.Key == key && l.Scope == scope {
			WriteJSON(w, status, labelJSONOf(projections.UserLabel{Key: l.Key, Value: l.Value, Scope: l.Scope.String(), Description: l.Description}))
			return
		}
	}
	a.fail(w, r, errScope, ErrLabelNotFound)
}

// The signed-in user's labels: public scope only for changes; the key is in the path.

func (a *accountRoutes) myLabels(w http.ResponseWriter, r *http.Request) {
	c, _ := CallerFrom(r.Context())
	ls, err := a.Labels.ForUser(r.Context(), c.UID)
	if err != nil {
		a.fail(w, r, scopeResourceLabels, err)
		return
	}
	WriteJSON(w, http.StatusOK, labelsJSON(ls))
}

func (a *accountRoutes) myLabel(w http.ResponseWriter, r *http.Request) {
	c, _ := CallerFrom(r.Context())
	ls, err := a.Labels.ForUser(r.Context(), c.UID)
	if err != nil {
		a.fail(w, r, scopeResourceLabels, err)
		return
	}
	key := mux.Vars(r)["key"]
	for _, l := range ls {
		if l.Key == key {
			WriteJSON(w, http.StatusOK, labelJSONOf(l)) // the public one first, as listed
			return
		}
	}
	a.fail(w, r, scopeResourceLabels, ErrLabelNotFound)
}

func (a *accountRoutes) addMyLabel(w http.ResponseWriter, r *http.Request) {
	p, ok := a.params(w, r)
	if !ok || !require(w, p, scopeResourceLabels, "key", "value") {
		return
	}
	c, _ := CallerFrom(r.Context())
	res, err := a.App.Commands.AddLabel.Handle(r.Context(), commands.AddLabel{
		Meta: a.meta(r), UID: uidOf(c), By: domain.ActorUser, Key: p.str("key"), Value: p.str("value"),
		Scope: domain.ScopePublic.String(),
	})
	if err != nil {
		a.fail(w, r, scopeResourceLabels, err)
		return
	}
	a.labelAnswer(w, r, scopeResourceLabels, http.StatusCreated, res, p.str("key"), domain.ScopePublic)
}

func (a *accountRoutes) updateMyLabel(w http.ResponseWriter, r *http.Request) {
	p, ok := a.params(w, r)
	if !ok || !require(w, p, scopeResourceLabels, "value") {
		return
	}
	c, _ := CallerFrom(r.Context())
	key := mux.Vars(r)["key"]
	res, err := a.App.Commands.UpdateLabel.Handle(r.Context(), commands.UpdateLabel{
		Meta: a.meta(r), UID: uidOf(c), By: domain.ActorUser, Key: key, Value: p.str("value"),
		Scope: domain.ScopePublic.String(),
	})
	if err != nil {
		a.fail(w, r, scopeResourceLabels, err)
		return
	}
	a.labelAnswer(w, r, scopeResourceLabels, http.StatusOK, res, key, domain.ScopePublic)
}

func (a *accountRoutes) removeMyLabel(w http.ResponseWriter, r *http.Request) {
	c, _ := CallerFrom(r.Context())
	res, err := a.App.Commands.RemoveLabel.Handle(r.Context(), commands.RemoveLabel{
		Meta: a.meta(r), UID: uidOf(c), By: domain.ActorUser, Key: mux.Vars(r)["key"], Scope: domain.ScopePublic.String(),
	})
	if err != nil {
		a.fail(w, r, scopeResourceLabels, err)
		return
	}
	a.caughtUp(r.Context(), res.Position)
	w.WriteHeader(http.StatusNoContent)
}

// Administrators: any user's labels, any scope; the user is the uid field.

// bodyOrQuery is a body field, or the query parameter of that name when the body has none (Barong's
// DELETE carries its fields in the query).
func bodyOrQuery(p params, r *http.Request, name string) string {
	if v := p.str(name); v != "" {
		return v
	}
	return r.URL.Query().Get(name)
}

// adminLabel reads the fields every admin label call has, answering 422 itself when one is
// missing or the uid is malformed.
func (a *accountRoutes) adminLabel(w http.ResponseWriter, r *http.Request, required ...string) (params, domain.UserID, bool) {
	p, ok := a.params(w, r)
	if !ok {
		return nil, "", false
	}
	var missing []string
	for _, f := range append([]string{"uid", "key"}, required...) {
		if bodyOrQuery(p, r, f) == "" {
			missing = append(missing, scopeAdminLabels+".missing_"+f)
		}
	}
	if missing != nil {
		WriteError(w, http.StatusUnprocessableEntity, missing...)
		return nil, "", false
	}
	uid, err := domain.ParseUserID(bodyOrQuery(p, r, "uid"))
	if err != nil {
		WriteError(w, http.StatusUnprocessableEntity, scopeAdminLabels+".invalid_uid")
		return nil, "", false
	}
	return p, uid, true
}

func (a *accountRoutes) adminAddLabel(w http.ResponseWriter, r *http.Request) {
	p, uid, ok := a.adminLabel(w, r, "value")
	if !ok {
		return
	}
	scope := bodyOrQuery(p, r, "scope")
	if scope == "" {
		scope = domain.ScopePublic.String()
	}
	key := bodyOrQuery(p, r, "key")
	res, err := a.App.Commands.AddLabel.Handle(r.Context(), commands.AddLabel{
		Meta: a.meta(r), UID: uid, By: domain.ActorAdmin, Key: key, Value: bodyOrQuery(p, r, "value"),
		Scope: scope, Description: bodyOrQuery(p, r, "description"),
	})
	if err != nil {
		a.fail(w, r, scopeAdminLabels, err)
		return
	}
	s, _ := domain.ParseLabelScope(scope) // the command accepted it
	a.labelAnswer(w, r, scopeAdminLabels, http.StatusCreated, res, key, s)
}

func (a *accountRoutes) adminUpdateLabel(w http.ResponseWriter, r *http.Request) {
	a.adminChangeLabel(w, r, false)
}

// adminSetLabel is POST /update: with replace=true a missing label is created.
func (a *accountRoutes) adminSetLabel(w http.ResponseWriter, r *http.Request) {
	a.adminChangeLabel(w, r, true)
}

func (a *accountRoutes) adminChangeLabel(w http.ResponseWriter, r *http.Request, replaceAllowed bool) {
	p, uid, ok := a.adminLabel(w, r, "scope", "value")
	if !ok {
		return
	}
	replace := false
	if v := bodyOrQuery(p, r, "replace"); replaceAllowed && v != "" {
		var err error
		if replace, err = strconv.ParseBool(v); err != nil {
			WriteError(w, http.StatusUnprocessableEntity, scopeAdminLabels+".invalid_replace")
			return
		}
	}
	key, scope := bodyOrQuery(p, r, "key"), bodyOrQuery(p, r, "scope")
	res, err := a.App.Commands.UpdateLabel.Handle(r.Context(), commands.UpdateLabel{
		Meta: a.meta(r), UID: uid, By: domain.ActorAdmin, Key: key, Value: bodyOrQuery(p, r, "value"),
		Scope: scope, Description: bodyOrQuery(p, r, "description"), CreateMissing: replace,
	})
	if err != nil {
		a.fail(w, r, scopeAdminLabels, err)
		return
	}
	s, _ := domain.ParseLabelScope(scope) // the command accepted it
	a.labelAnswer(w, r, scopeAdminLabels, http.StatusOK, res, key, s)
}

func (a *accountRoutes) adminRemoveLabel(w http.ResponseWriter, r *http.Request) {
	p, uid, ok := a.adminLabel(w, r, "scope")
	if !ok {
		return
	}
	res, err := a.App.Commands.RemoveLabel.Handle(r.Context(), commands.RemoveLabel{
		Meta: a.meta(r), UID: uid, By: domain.ActorAdmin, Key: bodyOrQuery(p, r, "key"), Scope: bodyOrQuery(p, r, "scope"),
	})
	if err != nil {
		a.fail(w, r, scopeAdminLabels, err)
		return
	}
	a.caughtUp(r.Context(), res.Position)
	w.WriteHeader(http.StatusNoContent)
}

// failView answers a read model's error: a filter out of range is 422 <scope>.invalid_<field>.
func (a *accountRoutes) failView(w http.ResponseWriter, r *http.Request, scope string, err error) {
	var fe *projections.FilterError
	if errors.As(err, &fe) {
		WriteError(w, http.StatusUnprocessableEntity, scope+".invalid_"+fe.Field)
		return
	}
	a.fail(w, r, scope, err)
}

// pageParams reads page and limit from the query; a value that is not a number answers 422.
func pageParams(w http.ResponseWriter, r *http.Request, scope string) (page, limit int, ok bool) {
	q := r.URL.Query()
	for _, f := range []struct {
		name string
		dst  *int
	}{{"page", &page}, {"limit", &limit}} {
		if v := q.Get(f.name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				WriteError(w, http.StatusUnprocessableEntity, scope+".invalid_"+f.name)
				return 0, 0, false
			}
			*f.dst = n
		}
	}
	return page, limit, true
}

// paginated sets Barong's pagination headers.
func paginated(w http.ResponseWriter, total, page, limit int) {
	if page == 0 {
		page = 1
	}
	if limit == 0 {
		limit = projections.DefaultLimit
	}
	w.Header().Set("Total", strconv.Itoa(total))
	w.Header().Set("Page", strconv.Itoa(page))
	w.Header().Set("Per-Page", strconv.Itoa(limit))
}

func (a *accountRoutes) usersWithLabel(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("key") == "" {
		WriteError(w, http.StatusUnprocessableEntity, scopeAdminLabels+".missing_key")
		return
	}
	page, limit, ok := pageParams(w, r, scopeAdminLabels)
	if !ok {
		return
	}
	users, total, err := a.Labels.Users(r.Context(), projections.LabelFilter{Key: q.Get("key"), Value: q.Get("value"), Scope: q.Get("scope"), Page: page, Limit: limit})
	if err != nil {
		a.failView(w, r, scopeAdminLabels, err)
		return
	}
	out := make([]userJSON, len(users))
	for i, u := range users {
		out[i] = userJSONOf(UserView{
			UID: u.UID, Email: u.Email, Username: u.Username, Role: u.Role, State: u.State, Level: u.Level,
			OTP: u.OTP, EmailVerified: u.EmailVerified, Data: u.Data, CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt,
		})
	}
	paginated(w, total, page, limit)
	WriteJSON(w, http.StatusOK, out)
}

func (a *accountRoutes) labelKeys(w http.ResponseWriter, r *http.Request) {
	keys, err := a.Labels.Keys(r.Context())
	if err != nil {
		a.fail(w, r, scopeAdminLabels, err)
		return
	}
	type keyJSON struct {
		Key   string `json:"key"`
		Value string `json:"value"`
		Scope string `json:"scope"`
		Users int    `json:"users"`
	}
	out := make([]keyJSON, len(keys))
	for i, k := range keys {
		out[i] = keyJSON(k)
	}
	WriteJSON(w, http.StatusOK, out)
}

// levels lists the ladder: the label each level requires, lowest first.
func (a *accountRoutes) levels(w http.ResponseWriter, _ *http.Request) {
	type levelJSON struct {
		ID          int    `json:"id"`
		Key         string `json:"key"`
		Value       string `json:"value"`
		Description string `json:"description,omitempty"`
	}
	reqs := a.App.Levels.Requirements()
	out := make([]levelJSON, len(reqs))
	for i, l := range reqs {
		out[i] = levelJSON{ID: i + 1, Key: l.Key, Value: l.Value, Description: l.Description}
	}
	WriteJSON(w, http.StatusOK, out)
}
