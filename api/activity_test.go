package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/mux"

	"github.com/idlog/idlog/api"
	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/eventstore/sqlite"
	"github.com/idlog/idlog/migrations"
	"github.com/idlog/idlog/projections"
)

// viewsEnv is a SQLite event store with the users and activity read models kept by a running
// projection runtime, and a router serving the read-model routes to a caller the test picks.
type viewsEnv struct {
	store    eventstore.Store
	runtime  *projections.Runtime
	activity *projections.ActivityView
	router   *mux.Router
}

func newViewsEnv(t *testing.T) *viewsEnv {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "idlog.db")
	store, err := sqlite.Open(ctx, sqlite.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	db, err := projections.OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	users := projections.NewUsersView(db, migrations.SQLite)
	activity := projections.NewActivityView(db, migrations.SQLite)
	rt, err := projections.New(projections.Options{DB: db, Dialect: migrations.SQLite, Store: store, LogInDB: true}, users, activity)
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		rt.Stop()
		db.Close()
		store.Close()
	})
	// The caller comes from the X-Test-Caller header ("uid role"), standing in for the bearer
	// middleware; no header, no caller.
	signedIn := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if uid, role, ok := strings.Cut(r.Header.Get("X-Test-Caller"), " "); ok {
				r = r.WithContext(api.WithCaller(r.Context(), api.Caller{UID: uid, Role: role}))
			}
			next.ServeHTTP(w, r)
		})
	}
	readers, admins := api.RequireRole(api.ActivityReaders...), api.RequireRole(api.ProjectionReaders...)
	r := mux.NewRouter()
	r.Handle("/api/v2/resource/users/activity/{topic}", signedIn(api.UserActivityHandler(activity, nil)))
	r.Handle("/api/v2/admin/activities", signedIn(readers(api.AdminActivitiesHandler(activity, false, nil))))
	r.Handle("/api/v2/admin/activities/admin", signedIn(readers(api.AdminActivitiesHandler(activity, true, nil))))
	r.Handle("/api/v2/admin/projections", signedIn(admins(api.ProjectionsHandler(rt, nil))))
	return &viewsEnv{store: store, runtime: rt, activity: activity, router: r}
}

// append appends domain events to a user's stream and waits until the read models show them.
func (e *viewsEnv) append(t *testing.T, uid string, meta eventstore.Metadata, events ...domain.Event) eventstore.AppendResult {
	t.Helper()
	es := make([]eventstore.NewEvent, len(events))
	for i, ev := range events {
		b, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		es[i] = eventstore.NewEvent{Type: ev.EventType(), SchemaVersion: 1, Data: b, Metadata: meta}
	}
	res, err := e.store.Append(context.Background(), eventstore.Append{Stream: domain.UserStreamPrefix + uid, Expected: eventstore.Any, Events: es})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.runtime.WaitFor(ctx, res.LastPosition); err != nil {
		t.Fatal(err)
	}
	return res
}

type activityAnswer struct {
	UID       string          `json:"uid"`
	TargetUID string          `json:"target_uid"`
	UserIP    string          `json:"user_ip"`
	UserAgent string          `json:"user_agent"`
	Topic     string          `json:"topic"`
	Action    string          `json:"action"`
	Result    string          `json:"result"`
	Data      json.RawMessage `json:"data"`
	CreatedAt time.Time       `json:"created_at"`
}

// get serves a GET as caller ("uid role", or "" for none) and returns the recorder.
func (e *viewsEnv) get(t *testing.T, caller, target string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, target, nil)
	if caller != "" {
		req.Header.Set("X-Test-Caller", caller)
	}
	rec := httptest.NewRecorder()
	e.router.ServeHTTP(rec, req)
	return rec
}

func decodeActivity(t *testing.T, rec *httptest.ResponseRecorder) []activityAnswer {
	t.Helper()
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d, body %s", rec.Code, rec.Body)
	}
	var out []activityAnswer
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatalf("%v: %s", err, rec.Body)
	}
	return out
}

func actions(as []activityAnswer) string {
	var s []string
	for _, a := range as {
		s = append(s, a.Topic+"/"+a.Action+"/"+a.Result)
	}
	return strings.Join(s, ",")
}

const (
	aliceUID = "ID00000A11CE"
	bobUID   = "ID00000000B0"
	rootUID  = "ID0000000001"
)

func seedActivity(t *testing.T, e *viewsEnv) (bobBanned time.Time) {
	t.Helper()
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	meta := func(uid string) eventstore.Metadata {
		return eventstore.Metadata{ActorUID: uid, ActorRole: "member", IP: "192.0.2.1", UserAgent: "browser/" + uid}
	}
	rootMeta := eventstore.Metadata{ActorUID: rootUID, ActorRole: "admin", IP: "198.51.100.9", UserAgent: "console"}
	for _, u := range []struct{ uid, email string }{{rootUID, "root@example.com"}, {aliceUID, "alice@example.com"}, {bobUID, "bob@example.com"}} {
		e.append(t, u.uid, meta(u.uid), domain.UserRegistered{UserID: domain.UserID(u.uid), Email: u.email, Role: domain.RoleMember, PasswordHash: "$argon2id$x"})
	}
	e.append(t, aliceUID, meta(aliceUID),
		domain.LoginFailed{Reason: domain.LoginFailureInvalidPassword, At: at},
		domain.SessionStarted{SessionID: "s1", At: at, ExpiresAt: at.Add(time.Hour)},
		domain.PasswordChanged{PasswordHash: "$argon2id$y"})
	e.append(t, bobUID, meta(bobUID), domain.SessionStarted{SessionID: "s2", At: at, ExpiresAt: at.Add(time.Hour)})
	time.Sleep(1100 * time.Millisecond) // the admin's action falls in a later second, for from/to
	res := e.append(t, bobUID, rootMeta, domain.UserStateChanged{From: domain.StateActive, To: domain.StateBanned, Reason: "spam"})
	return res.RecordedAt
}

func TestUserActivityRoute(t *testing.T) {
	t.Parallel()
	e := newViewsEnv(t)
	seedActivity(t, e)
	alice := aliceUID + " member"

	rec := e.get(t, alice, "/api/v2/resource/users/activity/all")
	got := decodeActivity(t, rec)
	if want := "password/change/succeed,session/login/succeed,session/login/failed,account/signup/succeed"; actions(got) != want {
		t.Errorf("alice's activity: %s\nwant %s (hers only, newest first)", actions(got), want)
	}
	if h := rec.Header(); h.Get("Total") != "4" || h.Get("Page") != "1" || h.Get("Per-Page") != "100" {
		t.Errorf("headers Total %q, Page %q, Per-Page %q; want 4, 1, 100", h.Get("Total"), h.Get("Page"), h.Get("Per-Page"))
	}
	if got[0].UserIP != "192.0.2.1" || got[0].UserAgent != "browser/"+aliceUID || got[0].UID != "" || got[0].CreatedAt.IsZero() {
		t.Errorf("row %+v: want the envelope's address and agent, a time, and no uid", got[0])
	}

	rec = e.get(t, alice, "/api/v2/resource/users/activity/session?page=2&limit=1")
	if got := decodeActivity(t, rec); actions(got) != "session/login/failed" || rec.Header().Get("Total") != "2" || rec.Header().Get("Page") != "2" || rec.Header().Get("Per-Page") != "1" {
		t.Errorf("second session page: %s, headers %v", actions(got), rec.Header())
	}
	// Bob was banned by an administrator: that row is the administrator's, not his.
	if got := decodeActivity(t, e.get(t, bobUID+" member", "/api/v2/resource/users/activity/all")); actions(got) != "session/login/succeed,account/signup/succeed" {
		t.Errorf("bob's activity: %s", actions(got))
	}

	for target, code := range map[string]string{
		"/api/v2/resource/users/activity/gossip":           "resource.activity.invalid_topic",
		"/api/v2/resource/users/activity/all?page=0":       "resource.activity.invalid_page",
		"/api/v2/resource/users/activity/all?limit=101":    "resource.activity.invalid_limit",
		"/api/v2/resource/users/activity/all?limit=ten":    "resource.activity.invalid_limit",
		"/api/v2/resource/users/activity/all?page=1000001": "resource.activity.invalid_page",
	} {
		rec := e.get(t, alice, target)
		if rec.Code != http.StatusUnprocessableEntity || !strings.Contains(rec.Body.String(), `"`+code+`"`) {
			t.Errorf("GET %s: %d %s; want 422 %s", target, rec.Code, rec.Body, code)
		}
	}
	if rec := e.get(t, "", "/api/v2/resource/users/activity/all"); rec.Code != http.StatusUnauthorized {
		t.Errorf("without a caller: %d, want 401", rec.Code)
	}
}

func TestAdminActivityRoutes(t *testing.T) {
	t.Parallel()
	e := newViewsEnv(t)
	banned := seedActivity(t, e)
	admin := rootUID + " admin"
	list := func(target string) ([]activityAnswer, string) {
		t.Helper()
		rec := e.get(t, admin, target)
		return decodeActivity(t, rec), rec.Header().Get("Total")
	}

	all, total := list("/api/v2/admin/activities")
	if len(all) != 8 || total != "8" {
		t.Fatalf("all activity: %d rows, Total %s; want 8", len(all), total)
	}
	adminRows, total := list("/api/v2/admin/activities/admin")
	if total != "1" || adminRows[0].UID != rootUID || adminRows[0].TargetUID != bobUID || adminRows[0].Topic != "admin" ||
		adminRows[0].Action != "change_state" || string(adminRows[0].Data) != `{"from":"active","to":"banned","reason":"spam"}` {
		t.Errorf("admin rows: %+v (Total %s); want root banning bob", adminRows, total)
	}
	sec := strconv.FormatInt(banned.Unix(), 10)
	for target, want := range map[string]string{
		"/api/v2/admin/activities?uid=" + aliceUID:                     "password/change/succeed,session/login/succeed,session/login/failed,account/signup/succeed",
		"/api/v2/admin/activities?email=BOB@example.com":               "session/login/succeed,account/signup/succeed",
		"/api/v2/admin/activities?topic=session&action=login":          "session/login/succeed,session/login/succeed,session/login/failed",
		"/api/v2/admin/activities?target_uid=" + bobUID:                "admin/change_state/succeed",
		"/api/v2/admin/activities?from=" + sec:                         "admin/change_state/succeed",
		"/api/v2/admin/activities?to=" + sec + "&topic=account":        "account/signup/succeed,account/signup/succeed,account/signup/succeed",
		"/api/v2/admin/activities/admin?email=root@example.com":        "admin/change_state/succeed",
		"/api/v2/admin/activities/admin?email=bob@example.com":         "",
		"/api/v2/admin/activities?uid=" + aliceUID + "&limit=2&page=2": "session/login/failed,account/signup/succeed",
	} {
		if got, _ := list(target); actions(got) != want {
			t.Errorf("GET %s:\n  %s\nwant %s", target, actions(got), want)
		}
	}

	for target, code := range map[string]string{
		"/api/v2/admin/activities?topic=gossip":    "admin.activity.invalid_topic",
		"/api/v2/admin/activities?from=20&to=10":   "admin.activity.invalid_from",
		"/api/v2/admin/activities?from=yesterday":  "admin.activity.invalid_from",
		"/api/v2/admin/activities?to=-1":           "admin.activity.invalid_to",
		"/api/v2/admin/activities?uid=alice":       "admin.activity.invalid_uid",
		"/api/v2/admin/activities?target_uid=x":    "admin.activity.invalid_target_uid",
		"/api/v2/admin/activities/admin?limit=500": "admin.activity.invalid_limit",
	} {
		rec := e.get(t, admin, target)
		if rec.Code != http.StatusUnprocessableEntity || !strings.Contains(rec.Body.String(), `"`+code+`"`) {
			t.Errorf("GET %s: %d %s; want 422 %s", target, rec.Code, rec.Body, code)
		}
	}
	for caller, status := range map[string]int{"": http.StatusUnauthorized, aliceUID + " member": http.StatusForbidden, rootUID + " support": http.StatusOK} {
		if rec := e.get(t, caller, "/api/v2/admin/activities"); rec.Code != status {
			t.Errorf("caller %q: %d, want %d", caller, rec.Code, status)
		}
	}
}

func TestProjectionsRoute(t *testing.T) {
	t.Parallel()
	e := newViewsEnv(t)
	res := e.append(t, aliceUID, eventstore.Metadata{}, domain.UserRegistered{UserID: aliceUID, Email: "a@example.com", Role: domain.RoleMember, PasswordHash: "$argon2id$x"})

	rec := e.get(t, rootUID+" superadmin", "/api/v2/admin/projections")
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	var st []struct {
		Name       string  `json:"name"`
		Generation int64   `json:"generation"`
		Position   uint64  `json:"position"`
		LagEvents  int64   `json:"lag_events"`
		LagSeconds float64 `json:"lag_seconds"`
		State      string  `json:"state"`
		Running    bool    `json:"running"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
		t.Fatal(err)
	}
	if len(st) != 2 || st[0].Name != "users" || st[1].Name != "activity" {
		t.Fatalf("statuses %+v; want users and activity", st)
	}
	for _, s := range st {
		if s.Position != res.LastPosition || s.LagEvents != 0 || s.State != "live" || !s.Running || s.Generation != 1 {
			t.Errorf("%+v: want live at %d, running, generation 1", s, res.LastPosition)
		}
	}
	if rec := e.get(t, rootUID+" support", "/api/v2/admin/projections"); rec.Code != http.StatusForbidden {
		t.Errorf("support: %d, want 403", rec.Code)
	}
}
