package api_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"iter"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/idlog/idlog/api"
	"github.com/idlog/idlog/apikeys"
	"github.com/idlog/idlog/attempts"
	"github.com/idlog/idlog/audit"
	"github.com/idlog/idlog/auth"
	"github.com/idlog/idlog/authz"
	"github.com/idlog/idlog/blobs"
	"github.com/idlog/idlog/commands"
	"github.com/idlog/idlog/courier"
	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/eventstore/eventstoretest"
	"github.com/idlog/idlog/eventstore/postgres"
	"github.com/idlog/idlog/eventstore/sqlite"
	"github.com/idlog/idlog/idempotency"
	"github.com/idlog/idlog/internal/roundtrips"
	"github.com/idlog/idlog/migrations"
	"github.com/idlog/idlog/projections"
)

// cheap argon2 parameters: 50 sign-ups at once must not take a gigabyte.
var cheap = auth.Params{Memory: 64, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32}

const password = "correct horse battery staple"

// clock is the time of the commands and the token signer; tests move it to expire tokens and to
// reach the next TOTP step.
type clock struct{ ns atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// logBuffer collects every log line of the server, debug included.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// mailbox delivers one-shot codes to the test, as a mailer would to the user, and lets the
// development notifier log the hand-off into the captured log.
type mailbox struct {
	log commands.LogNotifier
	mu  sync.Mutex
	box map[string][]string // address -> tokens, oldest first
}

func (m *mailbox) Notify(ctx context.Context, kind, to string, payload map[string]string) error {
	m.mu.Lock()
	m.box[kind+" "+to] = append(m.box[kind+" "+to], payload["token"])
	m.mu.Unlock()
	return m.log.Notify(ctx, kind, to, payload)
}

func (m *mailbox) last(t testing.TB, kind, to string) string {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	box := m.box[kind+" "+to]
	if len(box) == 0 {
		t.Fatalf("no %s mail to %s", kind, to)
	}
	return box[len(box)-1]
}

// usersView adapts the projections' users view to the API's.
type usersView struct{ v *projections.UsersView }

func (u usersView) ByUID(ctx context.Context, uid string) (api.UserView, error) {
	x, err := u.v.ByUID(ctx, uid)
	if errors.Is(err, projections.ErrNotFound) {
		return api.UserView{}, api.ErrUserNotFound
	}
	if err != nil {
		return api.UserView{}, err
	}
	return api.UserView{
		UID: x.UID, Email: x.Email, Username: x.Username, Role: x.Role, State: x.State, Level: x.Level,
		OTP: x.OTP, EmailVerified: x.EmailVerified, Data: x.Data, CreatedAt: x.CreatedAt, UpdatedAt: x.UpdatedAt,
	}, nil
}

// server is the real router over a real store and real read models.
type server struct {
	h       http.Handler // raw, its answers checked against the OpenAPI document
	raw     http.Handler // what api.NewServer returned
	store   eventstore.Store
	clock   *clock
	mail    *mailbox
	logs    *logBuffer
	signer  *auth.Signer
	key     ed25519.PrivateKey
	runtime *projections.Runtime
	// What a replica of this server needs (limits_test.go): the database (a SQLite file's path or
	// a PostgreSQL DSN), the sealer of OTP secrets, and the account routes' read side.
	at       string
	dialect  migrations.Dialect
	sealer   *auth.Sealer
	accounts *api.Accounts
	db       *sqlx.DB // the read models' handle (on PostgreSQL, the store's pool)
	hasher   *auth.PasswordHasher
	keys     eventstore.KeyOwners
	blobs    *blobs.Dir
	kyc      *projections.KYCView
}

type serverOptions struct {
	params auth.Params
	signIn commands.SignInConfig
	// metrics, when set, receives the attempt limiter's metrics.
	metrics prometheus.Registerer
	limits  commands.LimitsConfig
	// logHandler, when set, wraps the handler of the server's logs (logprivacy's filter).
	logHandler func(slog.Handler) slog.Handler
	// cors are the origins browser apps may call from; sessions sets the session lifetimes.
	cors     []string
	sessions commands.SessionsConfig
	// roundTrips counts the round trips to PostgreSQL of requests made with a context from
	// roundtrips.Track.
	roundTrips bool
	// streamReads, when set, counts the commands' reads of a stream (ReadStream calls).
	streamReads *atomic.Int64
	// noStreamVersions: /users/me reads a profile view that does not read the events table, as
	// on a read replica (IDLOG_READ_DATABASE_URL) or with EventStoreDB.
	noStreamVersions bool
	// geo locates addresses for the gatekeeper's country and continent restrictions.
	geo authz.Locator
}

// countingStore counts the stream reads of the store it wraps, and keeps its snapshots.
type countingStore struct {
	eventstore.Store
	eventstore.Snapshots
	reads *atomic.Int64
}

func (c countingStore) ReadStream(ctx context.Context, stream string, after uint64) iter.Seq2[eventstore.Event, error] {
	c.reads.Add(1)
	return c.Store.ReadStream(ctx, stream, after)
}

// backends are the engines the HTTP tests run on: SQLite always, Postgres when
// IDLOG_TEST_DATABASE_URL is set.
func backends(t *testing.T) []string {
	if os.Getenv("IDLOG_TEST_DATABASE_URL") == "" {
		t.Log("Postgres SKIPPED: set IDLOG_TEST_DATABASE_URL to run these tests on it too")
		return []string{"sqlite"}
	}
	return []string{"sqlite", "postgres"}
}

func eachBackend(t *testing.T, fn func(t *testing.T, s *server)) {
	for _, b := range backends(t) {
		t.Run(b, func(t *testing.T) {
			t.Parallel()
			fn(t, newServer(t, b, serverOptions{}))
		})
	}
}

func newServer(t testing.TB, backend string, o serverOptions) *server {
	ctx := context.Background()
	var (
		store   eventstore.Store
		keys    eventstore.KeyOwners
		db      *sqlx.DB
		dialect migrations.Dialect
		at      string
	)
	switch backend {
	case "sqlite":
		path := filepath.Join(t.TempDir(), "idlog.db")
		s, err := sqlite.Open(ctx, sqlite.Options{Path: path})
		if err != nil {
			t.Fatal(err)
		}
		store, keys, dialect, at = s, s, migrations.SQLite, path
		if db, err = projections.OpenSQLite(ctx, path); err != nil {
			t.Fatal(err)
		}
	case "postgres":
		dsn := eventstoretest.PostgresSchema(t)
		opts := postgres.Options{DSN: dsn}
		if o.roundTrips {
			opts.Connector = roundtrips.Connector
		}
		s, err := postgres.Open(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		store, keys, dialect, at = s, s, migrations.Postgres, dsn
		// The read models share the store's pool, as in idlog serve.
		db = s.DB()
	}
	logs := &logBuffer{}
	var logHandler slog.Handler = slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})
	if o.logHandler != nil {
		logHandler = o.logHandler(logHandler)
	}
	log := slog.New(logHandler)

	users := projections.NewUsersView(db, dialect)
	labels, wallets := projections.NewLabelsView(db, dialect), projections.NewWalletView(db, dialect)
	activity := projections.NewActivityView(db, dialect)
	sessions := projections.NewSessionsView(db, dialect)
	profiles := projections.NewUserProfilesView(db, dialect)
	kyc := projections.NewKYCView(db, dialect)
	apiKeys := projections.NewAPIKeysView(db, dialect)
	rt, err := projections.New(projections.Options{DB: db, Dialect: dialect, Store: store, Logger: log, LogInDB: true,
		RetryMin: 5 * time.Millisecond, RetryMax: 50 * time.Millisecond}, users, activity, labels, wallets, sessions, profiles, kyc, apiKeys)
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	if err := rt.Start(rctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stop()
		rt.Stop()
		if backend == "sqlite" {
			db.Close()
		}
		store.Close()
	})

	c := &clock{}
	c.ns.Store(time.Now().UnixNano())
	params := o.params
	if params == (auth.Params{}) {
		params = cheap
	}
	hasher, err := auth.NewPasswordHasher(params)
	if err != nil {
		t.Fatal(err)
	}
	sealKey := make([]byte, auth.KeySize)
	rand.Read(sealKey)
	sealer, _ := auth.NewSealer(sealKey)
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	signer, err := auth.NewSigner(key, auth.SignerConfig{Issuer: "idlog", Audience: "idlog", Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	mail := &mailbox{log: commands.LogNotifier{Logger: log}, box: map[string][]string{}}
	signIn := o.signIn
	signIn.Logger = log
	limiter, err := attempts.New(attempts.Options{DB: db, Dialect: dialect, Metrics: o.metrics})
	limits := o.limits
	limits.Logger = log
	if err != nil {
		t.Fatal(err)
	}
	commandStore := store
	if o.streamReads != nil {
		commandStore = countingStore{Store: store, Snapshots: store.(eventstore.Snapshots), reads: o.streamReads}
	}
	app, err := commands.New(commands.Deps{
		Store: commandStore, Keys: keys, Registry: domain.NewEventRegistry(), Hasher: hasher, Sealer: sealer, Tokens: signer, Notifier: mail,
		Attempts: limiter,
	}, commands.Config{Streams: commands.StreamsConfig{Now: c.Now}, Codes: commands.CodesConfig{Logger: log}, SignIn: signIn,
		Limits: limits, Sessions: o.sessions})
	if err != nil {
		t.Fatal(err)
	}
	blobStore, err := blobs.NewDir(filepath.Join(t.TempDir(), "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	accounts := &api.Accounts{
		App: app, Users: usersView{users}, Tokens: signer, Projections: rt, Labels: labels, Wallets: wallets,
		Profiles:     profileView(db, dialect, o.noStreamVersions),
		Admin:        &api.AdminUsers{Users: users, Activity: activity, Metrics: activity},
		Idempotency:  &api.Idempotency{Store: idempotency.NewSQLStore(db), Secret: sealKey},
		SessionList:  sessions,
		UserProfiles: profiles,
		KYC:          &api.KYC{Records: kyc, Blobs: blobStore, MaxDocumentBytes: 256 << 10},
		APIKeys:      apiKeys,
	}
	upstream, err := auth.NewSigner(key, auth.SignerConfig{Issuer: "idlog", Audience: "idlog:upstream", TTL: time.Minute, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	engine := authz.NewEngine(authz.Options{Source: app.PolicyStream, Geo: o.geo})
	accounts.Gatekeeper = &api.Gatekeeper{Engine: engine, Upstream: upstream, PublicPaths: []string{"/api/v2/public-upstream"}, Now: c.Now}
	// One resource server may introspect tokens with HTTP Basic: rs, its secret introspectSecret.
	accounts.Introspection = &api.IntrospectionClients{
		Clients: map[string][sha256.Size]byte{"rs": sha256.Sum256([]byte(introspectSecret))}, Limiter: limiter, Now: c.Now,
	}
	if accounts.APIKeyAuth, err = apikeys.New(apikeys.Options{Keys: app.APIKeyInfo, Limiter: limiter, DB: db, Dialect: dialect, Now: c.Now}); err != nil {
		t.Fatal(err)
	}
	ledger, err := audit.NewLedger(db, dialect)
	if err != nil {
		t.Fatal(err)
	}
	// Wired as idlog serve wires it, so that every route is served (openapi_test.go).
	accounts.Admin.UserAsOf = func(current http.Handler) http.Handler {
		return api.AdminUserAsOfHandler(store, nil, log, current)
	}
	raw := api.NewServer(api.Options{
		Logger: log, Version: "test", Accounts: accounts, EventKeys: new(signer.JWKS()),
		// Tests that queue a hundred commands on one user under the race detector on a loaded
		// machine may take longer than serve's 10 s; deadline_test.go tests the deadline itself.
		RequestTimeout: time.Minute,
		Views: &api.Views{Activity: activity, Projections: rt, Events: store, Ledger: ledger,
			Outbox: courier.Lister{DB: db.DB, Dialect: dialect}}, CORSOrigins: o.cors,
	})
	return &server{h: validated(t, raw), raw: raw, store: store, clock: c, mail: mail, logs: logs, signer: signer, key: key, runtime: rt,
		at: at, dialect: dialect, sealer: sealer, accounts: accounts, db: db, hasher: hasher, keys: keys, blobs: blobStore, kyc: kyc}
}

// profileView is the /users/me view: reading the user's stream version beside the profile (the
// store is in db) unless told not to.
func profileView(db *sqlx.DB, dialect migrations.Dialect, noStreamVersions bool) *projections.ProfileView {
	v := projections.NewProfileView(db, dialect)
	if noStreamVersions {
		return v
	}
	return v.WithStreamVersions()
}

// introspectSecret is the secret of the test servers' introspection client, rs.
const introspectSecret = "2f1d0c6b9e8a7f3e4d5c6b7a8f9e0d1c2b3a4f5e6d7c8b9a0f1e2d3c4b5a6f7e"

// response is an answer of the server.
type response struct {
	status int
	header http.Header
	body   string
}

// json decodes the body into v.
func (r response) json(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(r.body), v); err != nil {
		t.Fatalf("body %q: %v", r.body, err)
	}
}

// fields decodes a JSON object body.
func (r response) fields(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	r.json(t, &m)
	return m
}

// want fails the test unless the answer has the status and, if given, the error codes.
func (r response) want(t testing.TB, status int, codes ...string) response {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d %s, want %d", r.status, r.body, status)
	}
	if codes != nil {
		var e struct{ Errors []string }
		r.json(t, &e)
		if strings.Join(e.Errors, ",") != strings.Join(codes, ",") {
			t.Fatalf("errors %v, want %v", e.Errors, codes)
		}
	}
	return r
}

// request is one call: a JSON body from a map, or a form body from url.Values.
type request struct {
	method, path string
	body         any
	token        string
	header       http.Header
	remote       string
	ctx          context.Context // nil: the background
}

func (s *server) do(rq request) response {
	var body io.Reader
	ct := ""
	switch b := rq.body.(type) {
	case nil:
	case rawBody:
		body = strings.NewReader(string(b))
	case url.Values:
		body, ct = strings.NewReader(b.Encode()), "application/x-www-form-urlencoded"
	default:
		j, err := json.Marshal(b)
		if err != nil {
			panic(err)
		}
		body, ct = bytes.NewReader(j), "application/json"
	}
	req := httptest.NewRequest(rq.method, rq.path, body)
	if rq.ctx != nil {
		req = req.WithContext(rq.ctx)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	if rq.token != "" {
		req.Header.Set("Authorization", "Bearer "+rq.token)
	}
	for k, v := range rq.header {
		req.Header[k] = v
	}
	if rq.remote != "" {
		req.RemoteAddr = rq.remote
	}
	rec := httptest.NewRecorder()
	s.h.ServeHTTP(rec, req)
	return response{status: rec.Code, header: rec.Header(), body: rec.Body.String()}
}

func (s *server) post(path string, body any, token string) response {
	return s.do(request{method: http.MethodPost, path: path, body: body, token: token})
}

func (s *server) get(path, token string) response {
	return s.do(request{method: http.MethodGet, path: path, token: token})
}

type obj = map[string]any

// signUp registers a user and returns their uid.
func (s *server) signUp(t testing.TB, email, username string) string {
	t.Helper()
	body := obj{"email": email, "password": password}
	if username != "" {
		body["username"] = username
	}
	var u struct{ UID string }
	s.post("/api/v2/identity/users", body, "").want(t, http.StatusCreated).json(t, &u)
	return u.UID
}

// signIn returns an access token.
func (s *server) signIn(t testing.TB, login, code string) string {
	t.Helper()
	body := obj{"login": login, "password": password}
	if code != "" {
		body["otp_code"] = code
	}
	var out struct {
		AccessToken string `json:"access_token"`
	}
	s.post("/api/v2/identity/sessions", body, "").want(t, http.StatusOK).json(t, &out)
	return out.AccessToken
}

// events returns the whole stored log.
func (s *server) events(t testing.TB) []eventstore.Event {
	t.Helper()
	var out []eventstore.Event
	for e, err := range s.store.ReadAll(context.Background(), 0, eventstore.Filter{}) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}
