package api_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/idlog/idlog/api"
	"github.com/idlog/idlog/attempts"
	"github.com/idlog/idlog/audit"
	"github.com/idlog/idlog/auth"
	"github.com/idlog/idlog/commands"
	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/eventstore/sqlite"
	"github.com/idlog/idlog/migrations"
	"github.com/idlog/idlog/projections"
)

// newViewsServer is the real router with the account routes, the read-model routes and the audit
// routes, over a SQLite store and a running projection runtime.
func newViewsServer(t *testing.T) http.Handler {
	h, _ := newViewsServerApp(t)
	return h
}

func newViewsServerApp(t *testing.T) (http.Handler, commands.Application) {
	t.Helper()
	h, app, _, _ := newViewsServerParts(t)
	return h, app
}

// newViewsServerParts is newViewsServerApp with the store and the audit ledger behind it.
func newViewsServerParts(t *testing.T) (http.Handler, commands.Application, eventstore.Store, *audit.Ledger) {
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
	users, activity := projections.NewUsersView(db, migrations.SQLite), projections.NewActivityView(db, migrations.SQLite)
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
	hasher, err := auth.NewPasswordHasher(cheap)
	if err != nil {
		t.Fatal(err)
	}
	sealKey := make([]byte, auth.KeySize)
	rand.Read(sealKey)
	sealer, err := auth.NewSealer(sealKey)
	if err != nil {
		t.Fatal(err)
	}
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	signer, err := auth.NewSigner(key, auth.SignerConfig{Issuer: "idlog", Audience: "idlog"})
	if err != nil {
		t.Fatal(err)
	}
	discard := slog.New(slog.DiscardHandler)
	limiter, err := attempts.New(attempts.Options{DB: db, Dialect: migrations.SQLite})
	if err != nil {
		t.Fatal(err)
	}
	app, err := commands.New(commands.Deps{
		Store: store, Keys: store, Registry: domain.NewEventRegistry(), Hasher: hasher, Sealer: sealer, Tokens: signer,
		Notifier: commands.LogNotifier{Logger: discard}, Attempts: limiter,
	}, commands.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ledger, err := audit.NewLedger(db, migrations.SQLite)
	if err != nil {
		t.Fatal(err)
	}
	return validated(t, api.NewServer(api.Options{
		Accounts: &api.Accounts{App: app, Users: usersView{users}, Tokens: signer, Projections: rt},
		Views:    &api.Views{Activity: activity, Projections: rt, Events: store, Ledger: ledger},
	})), app, store, ledger
}

// The audit routes are served by the real router, to event readers only.
func TestAuditRoutesThroughTheRouter(t *testing.T) {
	t.Parallel()
	h, app := newViewsServerApp(t)
	ctx := context.Background()
	if _, err := app.Commands.RegisterUser.Handle(ctx, commands.RegisterUser{
		Meta: commands.Meta{ActorUID: "system"}, Email: "audrey@example.com", Password: password, Role: domain.RoleAuditor, TrustEmail: true,
	}); err != nil {
		t.Fatal(err)
	}
	if rec := serveJSON(t, h, http.MethodPost, "/api/v2/identity/users", "", map[string]string{"email": "mem@example.com", "password": password}); rec.Code != http.StatusCreated {
		t.Fatalf("sign-up: %d %s", rec.Code, rec.Body)
	}
	token := func(email string) string {
		rec := serveJSON(t, h, http.MethodPost, "/api/v2/identity/sessions", "", map[string]string{"email": email, "password": password})
		var s struct {
			AccessToken string `json:"access_token"`
		}
		if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &s) != nil {
			t.Fatalf("sign-in %s: %d %s", email, rec.Code, rec.Body)
		}
		return s.AccessToken
	}
	auditor, member := token("audrey@example.com"), token("mem@example.com")
	var page []struct {
		Type     string `json:"type"`
		StreamID string `json:"stream_id"`
	}
	rec := serveJSON(t, h, http.MethodGet, "/api/v2/admin/events?limit=100", auditor, nil)
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &page) != nil || len(page) < 2 || page[0].Type != "UserRegistered" {
		t.Fatalf("auditor GET /admin/events: %d %s", rec.Code, rec.Body)
	}
	uid := strings.TrimPrefix(page[0].StreamID, "user-")
	for _, path := range []string{"/api/v2/admin/events", "/api/v2/admin/users/" + uid + "/events", "/api/v2/admin/audit/verify"} {
		if rec := serveJSON(t, h, http.MethodGet, path, auditor, nil); rec.Code != http.StatusOK {
			t.Errorf("auditor GET %s: %d %s", path, rec.Code, rec.Body)
		}
		if rec := serveJSON(t, h, http.MethodGet, path, member, nil); rec.Code != http.StatusForbidden {
			t.Errorf("member GET %s: %d, want 403", path, rec.Code)
		}
		if rec := serveJSON(t, h, http.MethodGet, path, "", nil); rec.Code != http.StatusUnauthorized {
			t.Errorf("anonymous GET %s: %d, want 401", path, rec.Code)
		}
	}
}

func serveJSON(t *testing.T, h http.Handler, method, path, token string, body any) *httptest.ResponseRecorder {
	t.Helper()
	var b []byte
	if body != nil {
		b, _ = json.Marshal(body)
	}
	req := httptest.NewRequest(method, path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// A sign-in followed at once by a read of the activity log sees that sign-in, 100 times in a row:
// the answer to the POST waits for the read models.
func TestSignInThenActivityReadsTheWrite(t *testing.T) {
	t.Parallel()
	h := newViewsServer(t)
	if rec := serveJSON(t, h, http.MethodPost, "/api/v2/identity/users", "", map[string]string{"email": "walker@example.com", "password": password}); rec.Code != http.StatusCreated {
		t.Fatalf("sign-up: %d %s", rec.Code, rec.Body)
	}
	for i := 1; i <= 100; i++ {
		rec := serveJSON(t, h, http.MethodPost, "/api/v2/identity/sessions", "", map[string]string{"email": "walker@example.com", "password": password})
		var session struct {
			AccessToken string `json:"access_token"`
		}
		if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &session) != nil || session.AccessToken == "" {
			t.Fatalf("sign-in %d: %d %s", i, rec.Code, rec.Body)
		}
		rec = serveJSON(t, h, http.MethodGet, "/api/v2/resource/users/activity/session?limit=1", session.AccessToken, nil)
		var rows []struct{ Action, Result string }
		if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &rows) != nil {
			t.Fatalf("activity after sign-in %d: %d %s", i, rec.Code, rec.Body)
		}
		if total := rec.Header().Get("Total"); total != strconv.Itoa(i) || len(rows) != 1 || rows[0].Action != "login" || rows[0].Result != "succeed" {
			t.Fatalf("right after sign-in %d: Total %s, rows %+v; want %d sign-ins, the newest first", i, total, rows, i)
		}
		if i == 100 {
			for path, status := range map[string]int{
				"/api/v2/admin/activities":  http.StatusForbidden,
				"/api/v2/admin/projections": http.StatusForbidden,
			} {
				if rec := serveJSON(t, h, http.MethodGet, path, session.AccessToken, nil); rec.Code != status {
					t.Errorf("member GET %s: %d, want %d", path, rec.Code, status)
				}
				if rec := serveJSON(t, h, http.MethodGet, path, "", nil); rec.Code != http.StatusUnauthorized {
					t.Errorf("anonymous GET %s: %d, want 401", path, rec.Code)
				}
			}
		}
	}
}
