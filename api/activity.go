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
	"github.com/idlog/idlog/projections"
)

// ActivityLister is the activity read model; *projections.ActivityView is one.
type ActivityLister interface {
	List(ctx context.Context, f projections.ActivityFilter) ([]projections.Activity, int, error)
}

// ActivityReaders are the roles that may read everyone's activity, from the role table.
var ActivityReaders = commands.RolesWith(commands.AbilityReadActivity)

// Scopes of the read-model routes' error codes.
const (
	scopeResourceActivity = "resource.activity"
	scopeAdminActivity    = "admin.activity"
)

// Barong's pagination headers.
const (
	headerTotal   = "Total"
	headerPage    = "Page"
	headerPerPage = "Per-Page"
)

// activityJSON is Barong's activity object, with the acting user's uid and, on admin rows, the
// uid of the user acted on.
type activityJSON struct {
	UID       string          `json:"uid,omitempty"`
	TargetUID string          `json:"target_uid,omitempty"`
	UserIP    string          `json:"user_ip"`
	UserAgent string          `json:"user_agent"`
	Topic     string          `json:"topic"`
	Action    string          `json:"action"`
	Result    string          `json:"result"`
	Data      json.RawMessage `json:"data"`
	CreatedAt time.Time       `json:"created_at"`
}

func activityJSONOf(a projections.Activity, withUsers bool) activityJSON {
	j := activityJSON{
		UserIP: a.UserIP, UserAgent: a.UserAgent, Topic: a.Topic, Action: a.Action, Result: a.Result,
		Data: a.Data, CreatedAt: a.CreatedAt.UTC(),
	}
	if j.Data == nil {
		j.Data = json.RawMessage("null")
	}
	if withUsers {
		j.UID, j.TargetUID = a.UID, a.TargetUID
	}
	return j
}

// UserActivityHandler serves GET /api/v2/resource/users/activity/{topic}: the signed-in caller's
// own activity, newest first, for one topic or "all"; query page and limit. It needs the bearer
// middleware in front (CallerFrom).
func UserActivityHandler(v ActivityLister, log *slog.Logger) http.Handler {
	if v == nil {
		panic("api: UserActivityHandler needs the activity view")
	}
	log = orDiscard(log)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := CallerFrom(r.Context())
		if !ok {
			WriteError(w, http.StatusUnauthorized, "authz.missing_token")
			return
		}
		f := projections.ActivityFilter{UID: c.UID, Topic: mux.Vars(r)["topic"]}
		q := r.URL.Query()
		var bad []string
		f.Page, f.Limit, bad = readPage(q.Get("page"), q.Get("limit"), scopeResourceActivity)
		if bad != nil {
			WriteError(w, http.StatusUnprocessableEntity, bad...)
			return
		}
		listActivity(w, r, log, v, f, scopeResourceActivity, false)
	})
}

// AdminActivitiesHandler serves GET /api/v2/admin/activities (every row) and, with adminOnly,
// /api/v2/admin/activities/admin (the rows where an administrator acted on a user). Query
// filters: topic, action, uid, email, target_uid, from and to (unix seconds), page, limit. It
// needs the bearer middleware and RequireRole(ActivityReaders...) in front.
func AdminActivitiesHandler(v ActivityLister, adminOnly bool, log *slog.Logger) http.Handler {
	if v == nil {
		panic("api: AdminActivitiesHandler needs the activity view")
	}
	log = orDiscard(log)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		f := projections.ActivityFilter{
			Topic: q.Get("topic"), Action: q.Get("action"), UID: q.Get("uid"), Email: q.Get("email"),
			TargetUID: q.Get("target_uid"), AdminOnly: adminOnly,
		}
		var bad []string
		f.Page, f.Limit, bad = readPage(q.Get("page"), q.Get("limit"), scopeAdminActivity)
		var ok bool
		if f.From, ok = unixParam(q.Get("from")); !ok {
			bad = append(bad, scopeAdminActivity+".invalid_from")
		}
		if f.To, ok = unixParam(q.Get("to")); !ok {
			bad = append(bad, scopeAdminActivity+".invalid_to")
		}
		if bad != nil {
			WriteError(w, http.StatusUnprocessableEntity, bad...)
			return
		}
		listActivity(w, r, log, v, f, scopeAdminActivity, true)
	})
}

func listActivity(w http.ResponseWriter, r *http.Request, log *slog.Logger, v ActivityLister, f projections.ActivityFilter, scope string, withUsers bool) {
	rows, total, err := v.List(r.Context(), f)
	if err != nil {
		writeViewError(w, r, log, scope, err)
		return
	}
	out := make([]activityJSON, len(rows))
	for i, a := range rows {
		out[i] = activityJSONOf(a, withUsers)
	}
	setPageHeaders(w, total, f.Page, f.Limit)
	WriteJSON(w, http.StatusOK, out)
}

// readPage reads page and limit. Absent means the default; anything but a positive integer is
// refused here, since the views read 0 as "the default".
func readPage(page, limit, scope string) (p, l int, bad []string) {
	var ok bool
	if p, ok = positiveParam(page); !ok {
		bad = append(bad, scope+".invalid_page")
	}
	if l, ok = positiveParam(limit); !ok {
		bad = append(bad, scope+".invalid_limit")
	}
	return p, l, bad
}

func positiveParam(s string) (int, bool) {
	if s == "" {
		return 0, true
	}
	n, err := strconv.Atoi(s)
	return n, err == nil && n > 0
}

// unixParam reads a time given in unix seconds; absent is the zero time (no bound).
func unixParam(s string) (time.Time, bool) {
	if s == "" {
		return time.Time{}, true
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > 1<<40 {
		return time.Time{}, false
	}
	return time.Unix(n, 0).UTC(), true
}

// setPageHeaders sets Barong's pagination headers: the total, and the page and page size served.
func setPageHeaders(w http.ResponseWriter, total, page, limit int) {
	if page == 0 {
		page = 1
	}
	if limit == 0 {
		limit = projections.DefaultLimit
	}
	h := w.Header()
	h.Set(headerTotal, strconv.Itoa(total))
	h.Set(headerPage, strconv.Itoa(page))
	h.Set(headerPerPage, strconv.Itoa(limit))
}

// writeViewError answers a read model's error: a bad filter is 422 <scope>.invalid_<field>;
// anything else is the server's fault, logged and answered as errorStatus maps it.
func writeViewError(w http.ResponseWriter, r *http.Request, log *slog.Logger, scope string, err error) {
	var fe *projections.FilterError
	if errors.As(err, &fe) {
		WriteError(w, http.StatusUnprocessableEntity, scope+".invalid_"+fe.Field)
		return
	}
	status, code := errorStatus(scope, err)
	if status >= 500 {
		log.LogAttrs(r.Context(), slog.LevelError, "read model query failed",
			slog.String("request_id", RequestID(r.Context())), slog.String("code", code), slog.Any("error", err))
	}
	WriteError(w, status, code)
}

func orDiscard(log *slog.Logger) *slog.Logger {
	if log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return log
}
