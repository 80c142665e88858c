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
	"testing"

	"github.com/idlog/idlog/api"
	"github.com/idlog/idlog/auth"
	"github.com/idlog/idlog/commands"
	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/eventstore/sqlite"
	"github.com/idlog/idlog/migrations"
	"github.com/idlog/idlog/projections"
)

// newViewsServer is the real router with the account routes and the read-model routes, over a
// SQLite store and a running projection runtime.
func newViewsServer(t *testing.T) http.Handler {
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
	app, err := commands.New(commands.Deps{
		Store: store, Keys: store, Registry: domain.NewEventRegistry(), Hasher: hasher, Sealer: sealer, Tokens: signer,
		Notifier: commands.LogNotifier{Logger: discard},
	}, commands.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return api.NewServer(api.Options{
		Accounts: &api.Accounts{App: app, Users: usersView{users}, Tokens: signer, Projections: rt},
		Views:    &api.Views{Activity: activity, Projections: rt},
	})
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
