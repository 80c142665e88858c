package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/mux"
	"github.com/jmoiron/sqlx"

	"github.com/idlog/idlog/api"
	"github.com/idlog/idlog/audit"
	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/eventstore/eventstoretest"
	"github.com/idlog/idlog/eventstore/postgres"
	"github.com/idlog/idlog/eventstore/sqlite"
	"github.com/idlog/idlog/migrations"
	"github.com/idlog/idlog/projections"
)

// auditEnv is an event store with its audit ledger behind the admin event routes, guarded by the
// real RequireRole. The caller's role comes from a test header in place of a token.
type auditEnv struct {
	store  eventstore.Store
	ledger *audit.Ledger
	db     *sqlx.DB // writable: for sealing, and for tampering as an intruder would
	srv    *httptest.Server
}

const roleHeader = "X-Test-Role"

func newAuditEnv(t *testing.T, backend string) *auditEnv {
	t.Helper()
	ctx := context.Background()
	e := &auditEnv{}
	var dialect migrations.Dialect
	switch backend {
	case "postgres":
		s, err := postgres.Open(ctx, postgres.Options{DSN: eventstoretest.PostgresSchema(t), MaxOpenConns: 4})
		if err != nil {
			t.Fatal(err)
		}
		e.store, e.db, dialect = s, s.DB(), migrations.Postgres
	default:
		path := filepath.Join(t.TempDir(), "idlog.db")
		s, err := sqlite.Open(ctx, sqlite.Options{Path: path})
		if err != nil {
			t.Fatal(err)
		}
		db, err := projections.OpenSQLite(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		e.store, e.db, dialect = s, db, migrations.SQLite
	}
	t.Cleanup(func() { e.store.Close() })
	var err error
	if e.ledger, err = audit.NewLedger(e.db, dialect); err != nil {
		t.Fatal(err)
	}

	r := mux.NewRouter()
	guard := api.RequireRole(api.EventReaders...)
	current := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("read model")) })
	r.Handle("/api/v2/admin/events", guard(api.AdminEventsHandler(e.store, nil))).Methods(http.MethodGet)
	r.Handle("/api/v2/admin/users/{uid}/events", guard(api.AdminUserEventsHandler(e.store, nil))).Methods(http.MethodGet)
	r.Handle("/api/v2/admin/users/{uid}", guard(api.AdminUserAsOfHandler(e.store, nil, nil, current))).Methods(http.MethodGet)
	r.Handle("/api/v2/admin/audit/verify", guard(api.AuditVerifyHandler(e.store, e.ledger, nil))).Methods(http.MethodGet)
	withCaller := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if role := req.Header.Get(roleHeader); role != "" {
			req = req.WithContext(api.WithCaller(req.Context(), api.Caller{UID: "ID00000000AA", Role: role}))
		}
		r.ServeHTTP(w, req)
	})
	e.srv = httptest.NewServer(withCaller)
	t.Cleanup(e.srv.Close)
	return e
}

func (e *auditEnv) get(t *testing.T, path, role string, header ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if role != "" {
		req.Header.Set(roleHeader, role)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Body.Close() })
	return res
}

func decodeBody(t *testing.T, res *http.Response, want int, v any) {
	t.Helper()
	if res.StatusCode != want {
		t.Fatalf("%s: status %d, want %d", res.Request.URL, res.StatusCode, want)
	}
	if err := json.NewDecoder(res.Body).Decode(v); err != nil {
		t.Fatalf("%s: %v", res.Request.URL, err)
	}
}

type eventOut struct {
	Position      uint64              `json:"position"`
	EventID       string              `json:"event_id"`
	StreamID      string              `json:"stream_id"`
	StreamVersion uint64              `json:"stream_version"`
	Type          string              `json:"type"`
	Data          json.RawMessage     `json:"data"`
	Metadata      eventstore.Metadata `json:"metadata"`
	RecordedAt    time.Time           `json:"recorded_at"`
}

// appendUser registers a user and appends more of their events, each in an append of its own.
func appendUser(t *testing.T, s eventstore.Store, uid domain.UserID, more ...domain.Event) {
	t.Helper()
	events := append([]domain.Event{domain.UserRegistered{UserID: uid, Email: strings.ToLower(string(uid)) + "@example.com",
		PasswordHash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA", Role: domain.RoleMember}}, more...)
	for i, d := range events {
		data, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		_, err = s.Append(context.Background(), eventstore.Append{Stream: uid.Stream(), Expected: eventstore.Exactly(uint64(i)),
			Events: []eventstore.NewEvent{{Type: d.EventType(), SchemaVersion: 1, Data: data, Metadata: eventstore.Metadata{ActorUID: string(uid), IP: "192.0.2.9"}}}})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func allEvents(t *testing.T, s eventstore.Store) []eventstore.Event {
	t.Helper()
	var out []eventstore.Event
	for e, err := range s.ReadAll(context.Background(), 0, eventstore.Filter{}) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

func TestAdminEvents(t *testing.T) {
	t.Parallel()
	for _, b := range backends(t) {
		t.Run(b, func(t *testing.T) {
			t.Parallel()
			e := newAuditEnv(t, b)
			for i := range 8 {
				appendUser(t, e.store, domain.UserID(fmt.Sprintf("ID00000000%02X", i)),
					domain.UsernameChanged{To: fmt.Sprintf("name%d", i)}, domain.EmailVerified{Email: "x@example.com"})
			}
			log := allEvents(t, e.store)

			// JSON pages, followed by X-Next-After, give the whole log in order.
			var got []eventOut
			after := "0"
			for pages := 0; after != ""; pages++ {
				if pages > 10 {
					t.Fatal("pagination does not end")
				}
				res := e.get(t, "/api/v2/admin/events?limit=7&after="+after, "auditor")
				var page []eventOut
				decodeBody(t, res, http.StatusOK, &page)
				got = append(got, page...)
				after = res.Header.Get("X-Next-After")
			}
			if len(got) != len(log) {
				t.Fatalf("pages hold %d events, the log %d", len(got), len(log))
			}
			for i := range log {
				if got[i].EventID != log[i].ID.String() || got[i].Position != log[i].GlobalPosition || got[i].Metadata != log[i].Metadata ||
					!got[i].RecordedAt.Equal(log[i].RecordedAt) || got[i].Type != log[i].Type {
					t.Fatalf("event %d: %+v, the log has %+v", i, got[i], log[i])
				}
			}
			if !strings.Contains(string(got[0].Data), `"password_hash":"[redacted]"`) || strings.Contains(string(got[0].Data), "argon2id") {
				t.Fatalf("the password hash is shown: %s", got[0].Data)
			}

			// Filters: types, one stream, a stream prefix.
			var typed []eventOut
			decodeBody(t, e.get(t, "/api/v2/admin/events?type=UsernameChanged,EmailVerified&limit=1000", "admin"), http.StatusOK, &typed)
			if len(typed) != 16 || typed[0].Type != "UsernameChanged" || typed[1].Type != "EmailVerified" {
				t.Fatalf("type filter: %d events, first %+v", len(typed), typed)
			}
			var one []eventOut
			decodeBody(t, e.get(t, "/api/v2/admin/events?stream=user-ID0000000003&type=EmailVerified", "superadmin"), http.StatusOK, &one)
			if len(one) != 1 || one[0].StreamID != "user-ID0000000003" || one[0].StreamVersion != 3 {
				t.Fatalf("stream filter: %+v", one)
			}
			var prefixed []eventOut
			decodeBody(t, e.get(t, "/api/v2/admin/events?stream=user-ID000000000*&limit=1000", "auditor"), http.StatusOK, &prefixed)
			if len(prefixed) != 24 {
				t.Fatalf("stream prefix: %d events, want 24", len(prefixed))
			}

			// NDJSON: the whole log, one event a line.
			res := e.get(t, "/api/v2/admin/events?after="+strconv.FormatUint(log[4].GlobalPosition, 10), "auditor", "Accept", "application/x-ndjson")
			if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "application/x-ndjson" {
				t.Fatalf("NDJSON: status %d, content type %q", res.StatusCode, res.Header.Get("Content-Type"))
			}
			sc := bufio.NewScanner(res.Body)
			n := 5
			for sc.Scan() {
				var ev eventOut
				if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
					t.Fatalf("line %q: %v", sc.Text(), err)
				}
				if ev.EventID != log[n].ID.String() {
					t.Fatalf("line %d is %s, want %s", n, ev.EventID, log[n].ID)
				}
				n++
			}
			if n != len(log) {
				t.Fatalf("NDJSON ended after event %d of %d", n, len(log))
			}

			for _, q := range []string{"after=-1", "after=x", "limit=0", "limit=1001"} {
				var body struct{ Errors []string }
				decodeBody(t, e.get(t, "/api/v2/admin/events?"+q, "auditor"), http.StatusUnprocessableEntity, &body)
				if len(body.Errors) != 1 || !strings.HasPrefix(body.Errors[0], "admin.events.invalid_") {
					t.Fatalf("%s: errors %v", q, body.Errors)
				}
			}
		})
	}
}

func TestAdminUserEvents(t *testing.T) {
	t.Parallel()
	e := newAuditEnv(t, "sqlite")
	appendUser(t, e.store, "ID00000000A1", domain.UsernameChanged{To: "alice"})
	appendUser(t, e.store, "ID00000000B2")

	var events []eventOut
	decodeBody(t, e.get(t, "/api/v2/admin/users/ID00000000A1/events", "auditor"), http.StatusOK, &events)
	if len(events) != 2 || events[0].Type != "UserRegistered" || events[1].Type != "UsernameChanged" || events[1].StreamVersion != 2 {
		t.Fatalf("user events: %+v", events)
	}
	res := e.get(t, "/api/v2/admin/users/ID00000000A1/events", "auditor", "Accept", "application/x-ndjson")
	sc := bufio.NewScanner(res.Body)
	lines := 0
	for sc.Scan() {
		lines++
	}
	if lines != 2 {
		t.Fatalf("NDJSON user events: %d lines", lines)
	}
	for _, uid := range []string{"ID00000000C3", "not-an-id"} {
		var body struct{ Errors []string }
		decodeBody(t, e.get(t, "/api/v2/admin/users/"+uid+"/events", "auditor"), http.StatusNotFound, &body)
		if len(body.Errors) != 1 || body.Errors[0] != "admin.user.doesnt_exist" {
			t.Fatalf("%s: %v", uid, body.Errors)
		}
	}
}

// TestUserAsOf: the same user before and after a label change, by time and by position.
func TestUserAsOf(t *testing.T) {
	t.Parallel()
	for _, b := range backends(t) {
		t.Run(b, func(t *testing.T) {
			t.Parallel()
			e := newAuditEnv(t, b)
			uid := domain.UserID("ID00000000D4")
			appendUser(t, e.store, uid, domain.LabelAdded{Key: "email", Value: "verified", Scope: domain.ScopePrivate})
			time.Sleep(5 * time.Millisecond) // recorded_at is the database's clock: make the change later for sure
			appendUser2 := func(d domain.Event, version uint64) {
				data, _ := json.Marshal(d)
				if _, err := e.store.Append(context.Background(), eventstore.Append{Stream: uid.Stream(), Expected: eventstore.Exactly(version),
					Events: []eventstore.NewEvent{{Type: d.EventType(), SchemaVersion: 1, Data: data}}}); err != nil {
					t.Fatal(err)
				}
			}
			appendUser2(domain.LabelUpdated{Key: "email", Value: "rejected", Scope: domain.ScopePrivate, Description: "bounced"}, 2)
			appendUser2(domain.RoleChanged{From: domain.RoleMember, To: domain.RoleSupport}, 3)
			log := allEvents(t, e.store)
			before, change := log[1], log[2]

			type asOf struct {
				UID     string `json:"uid"`
				Role    string `json:"role"`
				Version uint64 `json:"version"`
				Labels  []struct {
					Key, Value, Scope, Description string
				} `json:"labels"`
			}
			for _, tc := range []struct {
				name, asOf, value, role string
				version                 uint64
			}{
				{"position before", strconv.FormatUint(before.GlobalPosition, 10), "verified", "member", 2},
				{"position of the change", strconv.FormatUint(change.GlobalPosition, 10), "rejected", "member", 3},
				{"time before", before.RecordedAt.Format(time.RFC3339Nano), "verified", "member", 2},
				{"time after", log[3].RecordedAt.Add(time.Second).Format(time.RFC3339Nano), "rejected", "support", 4},
			} {
				var u asOf
				decodeBody(t, e.get(t, "/api/v2/admin/users/"+string(uid)+"?as_of="+tc.asOf, "auditor"), http.StatusOK, &u)
				if u.UID != string(uid) || len(u.Labels) != 1 || u.Labels[0].Value != tc.value || u.Role != tc.role || u.Version != tc.version {
					t.Fatalf("%s: %+v, want label value %q, role %s, version %d", tc.name, u, tc.value, tc.role, tc.version)
				}
			}
			var body struct{ Errors []string }
			decodeBody(t, e.get(t, "/api/v2/admin/users/"+string(uid)+"?as_of="+log[0].RecordedAt.Add(-time.Hour).Format(time.RFC3339), "auditor"), http.StatusNotFound, &body)
			decodeBody(t, e.get(t, "/api/v2/admin/users/"+string(uid)+"?as_of=yesterday", "auditor"), http.StatusUnprocessableEntity, &body)
			if body.Errors[0] != "admin.user.invalid_as_of" {
				t.Fatalf("bad as_of: %v", body.Errors)
			}
			// Without as_of the route belongs to the read model.
			if res := e.get(t, "/api/v2/admin/users/"+string(uid), "auditor"); res.StatusCode != http.StatusOK {
				t.Fatalf("without as_of: %d", res.StatusCode)
			}
		})
	}
}

func TestAuditVerifyRoute(t *testing.T) {
	t.Parallel()
	for _, b := range backends(t) {
		t.Run(b, func(t *testing.T) {
			t.Parallel()
			e := newAuditEnv(t, b)
			for i := range 3 {
				appendUser(t, e.store, domain.UserID(fmt.Sprintf("ID00000000E%d", i)), domain.UsernameChanged{To: fmt.Sprintf("n%d", i)})
			}
			s, err := audit.NewSealer(audit.SealerOptions{Store: e.store, Ledger: e.ledger})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.CatchUp(context.Background()); err != nil {
				t.Fatal(err)
			}
			type report struct {
				OK       bool `json:"ok"`
				Verified int  `json:"verified"`
				Sealed   struct{ Ordinal int }
				Problem  *struct {
					Kind    string `json:"kind"`
					EventID string `json:"event_id"`
				} `json:"problem"`
			}
			var r report
			decodeBody(t, e.get(t, "/api/v2/admin/audit/verify", "auditor"), http.StatusOK, &r)
			if !r.OK || r.Verified != 6 || r.Sealed.Ordinal != 6 || r.Problem != nil {
				t.Fatalf("clean log: %+v", r)
			}
			victim := allEvents(t, e.store)[3]
			if _, err := e.db.Exec(e.db.Rebind(`DELETE FROM events WHERE event_id = ?`), victim.ID.String()); err != nil {
				t.Fatal(err)
			}
			decodeBody(t, e.get(t, "/api/v2/admin/audit/verify", "admin"), http.StatusOK, &r)
			if r.OK || r.Problem == nil || r.Problem.Kind != "deleted" || r.Problem.EventID != victim.ID.String() {
				t.Fatalf("after a deletion: %+v", r)
			}
		})
	}
}

// TestEventRoutesAreForReaders: only EventReaders get through, and only to read.
func TestEventRoutesAreForReaders(t *testing.T) {
	t.Parallel()
	e := newAuditEnv(t, "sqlite")
	appendUser(t, e.store, "ID00000000F1")
	paths := []string{"/api/v2/admin/events", "/api/v2/admin/users/ID00000000F1/events",
		"/api/v2/admin/users/ID00000000F1?as_of=1", "/api/v2/admin/audit/verify"}
	for _, p := range paths {
		for role, want := range map[string]int{"": 401, "member": 403, "support": 403, "compliance": 403, "accountant": 403,
			"auditor": 200, "admin": 200, "superadmin": 200} {
			if res := e.get(t, p, role); res.StatusCode != want {
				t.Errorf("GET %s as %q: %d, want %d", p, role, res.StatusCode, want)
			}
		}
		for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
			req, _ := http.NewRequest(m, e.srv.URL+p, strings.NewReader("{}"))
			req.Header.Set(roleHeader, "superadmin")
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusMethodNotAllowed {
				t.Errorf("%s %s: %d, want 405", m, p, res.StatusCode)
			}
		}
	}
}
