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

// Admin user routes, /api/v2/admin (Barong's admin API, with Wekan's enable/disable login): find,
// inspect, create, block, unblock, re-role and delete users, and the sign-up and sign-in report.
// Every route checks the role table (commands.Permits) after the bearer middleware; the commands
// check it again with the rules that depend on the user acted on (nobody acts on themselves, only a
// superadmin on a superadmin).

// scopeAdminMetrics is the scope of GET /admin/metrics's error codes; the user routes' is
// scopeAdminUser (admin_events.go).
const scopeAdminMetrics = "admin.metrics"

// recentActivity is how many activity rows GET /admin/users/{uid} shows, of each kind.
const recentActivity = 20

// DefaultMetricsPeriod is the period GET /admin/metrics reports on when created_from is absent.
const DefaultMetricsPeriod = 24 * time.Hour

// UserDirectory is the users read model the admin routes read; *projections.UsersView is one.
type UserDirectory interface {
	// List returns a page of the users matching f, newest first, and how many match in all; a bad
	// filter is a *projections.FilterError.
	List(ctx context.Context, f projections.UserFilter) ([]projections.User, int, error)
	// ByUID returns a user, or an error matching projections.ErrNotFound.
	ByUID(ctx context.Context, uid string) (projections.User, error)
}

// UserMetricsReport counts sign-ups and sign-ins of a period; *projections.ActivityView is one.
type UserMetricsReport interface {
	UserMetrics(ctx context.Context, from, to time.Time) (projections.UserMetrics, error)
}

// AdminUsers is what the admin user routes read beside Accounts (whose Labels and Wallets, when
// set, add a user's labels and balances to GET /admin/users/{uid}).
type AdminUsers struct {
	// Users is required.
	Users UserDirectory
	// Activity, when set, adds a user's recent activity to GET /admin/users/{uid}.
	Activity ActivityLister
	// Metrics, when set, serves GET /admin/metrics.
	Metrics UserMetricsReport
	// UserAsOf, when set, answers GET /admin/users/{uid}?as_of= (the user as they were then) to
	// callers with commands.AbilityReadEvents, and hands requests without as_of to the current view
	// it is given; AdminUserAsOfHandler is one.
	UserAsOf func(current http.Handler) http.Handler
}

// RequireAbility lets through only callers whose role has one of the abilities in the role table
// (commands.Permits). Put it after the bearer middleware: without a caller it answers 401, with a
// role lacking them 403 admin.ability.not_permitted.
func RequireAbility(abilities ...commands.Ability) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, ok := CallerFrom(r.Context())
			if !ok {
				WriteError(w, http.StatusUnauthorized, "authz.missing_token")
				return
			}
			for _, a := range abilities {
				if commands.Permits(c.Role, a) {
					next.ServeHTTP(w, r)
					return
				}
			}
			WriteError(w, http.StatusForbidden, "admin.ability.not_permitted")
		})
	}
}

// registerAdminUsers adds the admin user routes to r. A user id in a path is "ID" and 10
// upper-case hex digits, so /admin/users/labels (labels.go) is never taken for one.
func (a *accountRoutes) registerAdminUsers(r *mux.Router) {
	if a.Admin.Users == nil {
		panic("api: AdminUsers needs Users")
	}
	get, post, put, del := []string{http.MethodGet, http.MethodHead}, http.MethodPost, http.MethodPut, http.MethodDelete
	// Every route honours Idempotency-Key: the decorator is on the router.
	route := func(f http.HandlerFunc, abilities ...commands.Ability) http.Handler {
		return a.authn.Middleware(RequireAbility(abilities...)(f))
	}
	const user = "/api/v2/admin/users/{uid:ID[0-9A-F]{10}}"
	r.Handle("/api/v2/admin/users", route(a.adminListUsers, commands.AbilityReadUsers)).Methods(get...)
	r.Handle("/api/v2/admin/users", route(a.adminCreateUser, commands.AbilityCreateUsers)).Methods(post)
	// Either ability opens the route; each field is checked against its own below.
	r.Handle("/api/v2/admin/users", route(a.adminUpdateUser, commands.AbilityChangeUserState, commands.AbilityResetUserOTP)).Methods(put)
	r.Handle("/api/v2/admin/users/role", route(a.adminChangeRole, commands.AbilityChangeUserRole)).Methods(post)
	// Barong 2.4's other spelling of PUT /admin/users.
	r.Handle("/api/v2/admin/users/update", route(a.adminUpdateUser, commands.AbilityChangeUserState, commands.AbilityResetUserOTP)).Methods(post)
	r.Handle(user, a.authn.Middleware(RequireAbility(commands.AbilityReadUsers)(a.adminUserAsOf()))).Methods(get...)
	r.Handle(user, route(a.adminCloseAccount, commands.AbilityDeleteUsers)).Methods(del)
	a.registerPersonalData(r, user, route)
	r.Handle(user+"/login", route(a.adminSetLogin, commands.AbilityChangeUserState)).Methods(put)
	r.Handle(user+"/sessions", route(a.adminEndSessions, commands.AbilityChangeUserState)).Methods(del)
	r.Handle(user+"/sessions/{id}", route(a.adminEndSessions, commands.AbilityChangeUserState)).Methods(del)
	if a.Admin.Metrics != nil {
		r.Handle("/api/v2/admin/metrics", route(a.adminMetrics, commands.AbilityReadMetrics)).Methods(get...)
	}
}

// adminUserJSON is a user as the admin routes show them: Barong's user object with Wekan's
// login_disabled; the extended view adds the free data and the labels.
type adminUserJSON struct {
	UID           string          `json:"uid"`
	Email         string          `json:"email"`
	Username      *string         `json:"username"`
	Role          string          `json:"role"`
	Level         int             `json:"level"`
	OTP           bool            `json:"otp"`
	State         string          `json:"state"`
	EmailVerified bool            `json:"email_verified"`
	LoginDisabled bool            `json:"login_disabled"`
	Data          json.RawMessage `json:"data,omitempty"`
	Labels        *[]labelJSON    `json:"labels,omitempty"`
	CreatedAt     *time.Time      `json:"created_at"`
	UpdatedAt     *time.Time      `json:"updated_at"`
}

func adminUserJSONOf(u projections.User) adminUserJSON {
	j := adminUserJSON{
		UID: u.UID, Email: u.Email, Role: u.Role, Level: u.Level, OTP: u.OTP, State: u.State,
		EmailVerified: u.EmailVerified, LoginDisabled: u.LoginDisabled,
	}
	if u.Username != "" {
		j.Username = &u.Username
	}
	if !u.CreatedAt.IsZero() {
		c, up := u.CreatedAt.UTC(), u.UpdatedAt.UTC()
		j.CreatedAt, j.UpdatedAt = &c, &up
	}
	return j
}

// extend adds the data and, when the server has the labels read model, the labels.
func (a *accountRoutes) extend(ctx context.Context, j *adminUserJSON, u projections.User) error {
	j.Data = u.Data
	if j.Data == nil {
		j.Data = json.RawMessage("null")
	}
	if a.Labels == nil {
		return nil
	}
	ls, err := a.Labels.ForUser(ctx, u.UID)
	if err != nil {
		return err
	}
	l := labelsJSON(ls)
	j.Labels = &l
	return nil
}

func (a *accountRoutes) adminListUsers(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := projections.UserFilter{
		UID: q.Get("uid"), Email: q.Get("email"), Username: q.Get("username"), Role: q.Get("role"), State: q.Get("state"),
		FirstName: q.Get("first_name"), LastName: q.Get("last_name"), Country: q.Get("country"),
	}
	var bad []string
	f.Page, f.Limit, bad = readPage(q.Get("page"), q.Get("limit"), scopeAdminUser)
	if s := q.Get("level"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			bad = append(bad, scopeAdminUser+".invalid_level")
		}
		f.Level = &n
	}
	if s := q.Get("otp"); s != "" {
		b, err := strconv.ParseBool(s)
		if err != nil {
			bad = append(bad, scopeAdminUser+".invalid_otp")
		}
		f.OTP = &b
	}
	extended, err := strconv.ParseBool(q.Get("extended"))
	if err != nil && q.Get("extended") != "" {
		bad = append(bad, scopeAdminUser+".invalid_extended")
	}
	var ok bool
	if f.From, ok = unixParam(q.Get("from")); !ok {
		bad = append(bad, scopeAdminUser+".invalid_from")
	}
	if f.To, ok = unixParam(q.Get("to")); !ok {
		bad = append(bad, scopeAdminUser+".invalid_to")
	}
	if bad != nil {
		WriteError(w, http.StatusUnprocessableEntity, bad...)
		return
	}
	users, total, err := a.Admin.Users.List(r.Context(), f)
	if err != nil {
		writeViewError(w, r, a.log, scopeAdminUser, err)
		return
	}
	out := make([]adminUserJSON, len(users))
	for i, u := range users {
		out[i] = adminUserJSONOf(u)
		if extended {
			if err := a.extend(r.Context(), &out[i], u); err != nil {
				writeViewError(w, r, a.log, scopeAdminUser, err)
				return
			}
		}
	}
	setPageHeaders(w, total, f.Page, f.Limit)
	WriteJSON(w, http.StatusOK, out)
}

// adminUserDetailJSON is everything about one user the read models hold: the extended user, their
// balances, their own recent activity and what administrators recently did to them. Sessions have
// no read model yet; the activity shows the sign-ins and sign-outs.
type adminUserDetailJSON struct {
	adminUserJSON
	Wallet        *walletJSON        `json:"wallet,omitempty"`
	Activity      *[]activityJSON    `json:"activity,omitempty"`
	AdminActivity *[]activityJSON    `json:"admin_activity,omitempty"`
	Sessions      *[]sessionListJSON `json:"sessions,omitempty"`
	Profiles      *[]profileJSON     `json:"profiles,omitempty"`
	// Barong's UserWithKYC, when the server keeps KYC (kyc.go).
	Phones       *[]phoneJSON       `json:"phones,omitempty"`
	Documents    *[]documentJSON    `json:"documents,omitempty"`
	DataStorages *[]dataStorageJSON `json:"data_storages,omitempty"`
}

// adminUserAsOf is GET /admin/users/{uid}: the current view, or with as_of and UserAsOf set, the
// user as they were then, for those who may read the event log.
func (a *accountRoutes) adminUserAsOf() http.Handler {
	current := http.HandlerFunc(a.adminUser)
	if a.Admin.UserAsOf == nil {
		return current
	}
	past := RequireAbility(commands.AbilityReadEvents)(a.Admin.UserAsOf(current))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("as_of") {
			past.ServeHTTP(w, r)
			return
		}
		current.ServeHTTP(w, r)
	})
}

func (a *accountRoutes) adminUser(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	u, err := a.Admin.Users.ByUID(ctx, mux.Vars(r)["uid"])
	if err != nil {
		writeViewError(w, r, a.log, scopeAdminUser, err)
		return
	}
	d := adminUserDetailJSON{adminUserJSON: adminUserJSONOf(u)}
	if err := a.extend(ctx, &d.adminUserJSON, u); err != nil {
		writeViewError(w, r, a.log, scopeAdminUser, err)
		return
	}
	if a.Wallets != nil {
		b, err := a.Wallets.Balances(ctx, u.UID)
		if err != nil {
			writeViewError(w, r, a.log, scopeAdminUser, err)
			return
		}
		d.Wallet = &walletJSON{Free: b.Free, Standard: b.Standard}
	}
	if a.UserProfiles != nil {
		profiles, err := a.profilesOf(ctx, u.UID)
		if err != nil {
			writeViewError(w, r, a.log, scopeAdminUser, err)
			return
		}
		d.Profiles = &profiles
	}
	if a.KYC != nil {
		phones, docs, data, err := a.kycOf(ctx, u.UID)
		if err != nil {
			writeViewError(w, r, a.log, scopeAdminUser, err)
			return
		}
		d.Phones, d.Documents, d.DataStorages = &phones, &docs, &data
	}
	if a.SessionList != nil {
		list, err := a.SessionList.ForUser(ctx, u.UID, a.App.Commands.RefreshSession.Now())
		if err != nil {
			writeViewError(w, r, a.log, scopeAdminUser, err)
			return
		}
		sessions := sessionsJSONOf(list, "")
		d.Sessions = &sessions
	}
	if a.Admin.Activity != nil {
		for _, part := range []struct {
			f   projections.ActivityFilter
			out **[]activityJSON
		}{
			{projections.ActivityFilter{UID: u.UID, Limit: recentActivity}, &d.Activity},
			{projections.ActivityFilter{TargetUID: u.UID, Limit: recentActivity}, &d.AdminActivity},
		} {
			rows, _, err := a.Admin.Activity.List(ctx, part.f)
			if err != nil {
				writeViewError(w, r, a.log, scopeAdminUser, err)
				return
			}
			list := make([]activityJSON, len(rows))
			for i, row := range rows {
				list[i] = activityJSONOf(row, true)
			}
			*part.out = &list
		}
	}
	WriteJSON(w, http.StatusOK, d)
}

// adminAnswer waits for the read models and answers with the user as they show them, or as the
// command left them if they are late.
func (a *accountRoutes) adminAnswer(w http.ResponseWriter, r *http.Request, status int, res commands.Result) {
	a.caughtUp(r.Context(), res.Position)
	u, err := a.Admin.Users.ByUID(r.Context(), res.Account.UID)
	if err != nil {
		if !errors.Is(err, projections.ErrNotFound) {
			a.log.LogAttrs(r.Context(), slog.LevelError, "read the users read model", slog.String("request_id", RequestID(r.Context())), slog.Any("error", err))
		}
		acct := res.Account
		u = projections.User{
			UID: acct.UID, Email: acct.Email, Username: acct.Username, Role: acct.Role, State: acct.State,
			Level: acct.Level, OTP: acct.OTP, EmailVerified: acct.EmailVerified, Data: acct.Data,
		}
	}
	WriteJSON(w, status, adminUserJSONOf(u))
}

func (a *accountRoutes) adminCreateUser(w http.ResponseWriter, r *http.Request) {
	p, ok := a.params(w, r)
	if !ok || !require(w, p, scopeAdminUser, "email", "password") {
		return
	}
	var role domain.Role
	if s := p.str("role"); s != "" {
		var err error
		if role, err = domain.ParseRole(s); err != nil {
			a.fail(w, r, scopeAdminUser, err)
			return
		}
	}
	res, err := a.App.Commands.CreateUser.Handle(r.Context(), commands.CreateUser{
		Meta: a.meta(r), Email: p.str("email"), Password: p.str("password"), Username: p.str("username"), Role: role,
	})
	if err != nil {
		a.fail(w, r, scopeAdminUser, err)
		return
	}
	a.adminAnswer(w, r, http.StatusCreated, res)
}

// adminUpdateUser is Barong's PUT /admin/users {uid, state?, otp?}: a state change, and otp=false
// to turn the user's two-factor authentication off. Both abilities are checked before either
// change is made, so a caller allowed one of them changes nothing when asking for both.
func (a *accountRoutes) adminUpdateUser(w http.ResponseWriter, r *http.Request) {
	p, ok := a.params(w, r)
	if !ok || !require(w, p, scopeAdminUser, "uid") {
		return
	}
	stateName, otp := p.str("state"), p.str("otp")
	if stateName == "" && otp == "" {
		WriteError(w, http.StatusUnprocessableEntity, scopeAdminUser+".missing_state_or_otp")
		return
	}
	var state domain.State
	if stateName != "" {
		var err error
		if state, err = domain.ParseState(stateName); err != nil {
			a.fail(w, r, scopeAdminUser, err)
			return
		}
	}
	if otp != "" {
		// Only off: turning it on needs the user's own authenticator.
		if on, err := strconv.ParseBool(otp); err != nil || on {
			WriteError(w, http.StatusUnprocessableEntity, scopeAdminUser+".invalid_otp")
			return
		}
	}
	c, _ := CallerFrom(r.Context())
	if stateName != "" && !commands.Permits(c.Role, commands.AbilityChangeUserState) ||
		otp != "" && !commands.Permits(c.Role, commands.AbilityResetUserOTP) {
		WriteError(w, http.StatusForbidden, "admin.ability.not_permitted")
		return
	}
	meta, uid := a.meta(r), domain.UserID(p.str("uid"))
	var res commands.Result
	if stateName != "" {
		var err error
		if res, err = a.App.Commands.ChangeUserState.Handle(r.Context(), commands.ChangeUserState{Meta: meta, UID: uid, State: state, Reason: p.str("reason")}); err != nil {
			a.fail(w, r, scopeAdminUser, err)
			return
		}
	}
	if otp != "" {
		if meta.IdempotencyKey != "" {
			// Two commands, one request: each gets its own key, both derived from the client's.
			meta.IdempotencyKey += ":otp"
		}
		var err error
		if res, err = a.App.Commands.ResetUserOTP.Handle(r.Context(), commands.ResetUserOTP{Meta: meta, UID: uid}); err != nil {
			a.fail(w, r, scopeAdminUser, err)
			return
		}
	}
	a.adminAnswer(w, r, http.StatusOK, res)
}

func (a *accountRoutes) adminChangeRole(w http.ResponseWriter, r *http.Request) {
	p, ok := a.params(w, r)
	if !ok || !require(w, p, scopeAdminUser, "uid", "role") {
		return
	}
	role, err := domain.ParseRole(p.str("role"))
	if err != nil {
		a.fail(w, r, scopeAdminUser, err)
		return
	}
	res, err := a.App.Commands.ChangeUserRole.Handle(r.Context(), commands.ChangeUserRole{Meta: a.meta(r), UID: domain.UserID(p.str("uid")), Role: role})
	if err != nil {
		a.fail(w, r, scopeAdminUser, err)
		return
	}
	a.adminAnswer(w, r, http.StatusCreated, res)
}

func (a *accountRoutes) adminSetLogin(w http.ResponseWriter, r *http.Request) {
	p, ok := a.params(w, r)
	if !ok || !require(w, p, scopeAdminUser, "enabled") {
		return
	}
	enabled, err := strconv.ParseBool(p.str("enabled"))
	if err != nil {
		WriteError(w, http.StatusUnprocessableEntity, scopeAdminUser+".invalid_enabled")
		return
	}
	res, err := a.App.Commands.SetUserLogin.Handle(r.Context(), commands.SetUserLogin{Meta: a.meta(r), UID: domain.UserID(mux.Vars(r)["uid"]), Enabled: enabled})
	if err != nil {
		a.fail(w, r, scopeAdminUser, err)
		return
	}
	a.adminAnswer(w, r, http.StatusOK, res)
}

func (a *accountRoutes) adminCloseAccount(w http.ResponseWriter, r *http.Request) {
	res, err := a.App.Commands.CloseAccount.Handle(r.Context(), commands.CloseAccount{Meta: a.meta(r), UID: domain.UserID(mux.Vars(r)["uid"])})
	if err != nil {
		a.fail(w, r, scopeAdminUser, err)
		return
	}
	a.caughtUp(r.Context(), res.Position)
	a.closed()
	w.WriteHeader(http.StatusNoContent)
}

// metricsJSON is Barong's admin metrics report.
type metricsJSON struct {
	CreatedFrom      time.Time `json:"created_from"`
	CreatedTo        time.Time `json:"created_to"`
	Signups          int       `json:"signups"`
	SuccessfulLogins int       `json:"successful_logins"`
	FailedLogins     int       `json:"failed_logins"`
	ActiveUsers      int       `json:"active_users"`
}

// adminMetrics reports on [created_from, created_to), unix seconds; created_to defaults to now and
// created_from to DefaultMetricsPeriod before created_to.
func (a *accountRoutes) adminMetrics(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	from, okFrom := unixParam(q.Get("created_from"))
	to, okTo := unixParam(q.Get("created_to"))
	var bad []string
	if !okFrom {
		bad = append(bad, scopeAdminMetrics+".invalid_created_from")
	}
	if !okTo {
		bad = append(bad, scopeAdminMetrics+".invalid_created_to")
	}
	if bad != nil {
		WriteError(w, http.StatusUnprocessableEntity, bad...)
		return
	}
	if to.IsZero() {
		to = time.Now().UTC()
	}
	if from.IsZero() {
		from = to.Add(-DefaultMetricsPeriod)
	}
	m, err := a.Admin.Metrics.UserMetrics(r.Context(), from, to)
	if err != nil {
		writeViewError(w, r, a.log, scopeAdminMetrics, err)
		return
	}
	WriteJSON(w, http.StatusOK, metricsJSON{
		CreatedFrom: m.From, CreatedTo: m.To, Signups: m.SignUps, SuccessfulLogins: m.SignIns,
		FailedLogins: m.FailedSignIns, ActiveUsers: m.ActiveUsers,
	})
}
