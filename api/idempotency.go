package api

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"github.com/idlog/idlog/auth"
	"github.com/idlog/idlog/idempotency"
)

// IdempotencyKeyHeader names the key a client sends to make a retried request safe.
const IdempotencyKeyHeader = "Idempotency-Key"

// IdempotentReplayedHeader is "true" on an answer that was kept from the first request.
const IdempotentReplayedHeader = "Idempotent-Replayed"

// Idempotency says where the answers to requests with an Idempotency-Key are kept.
type Idempotency struct {
	// Store keeps the claims and the first answers: idempotency.SQLStore in the event store's
	// database, so that a retry on any replica, after any restart, gets the first answer.
	Store idempotency.Store
	// Secret keys the hashes that stand for caller, route, key and body (so a stolen table does
	// not give them back, even a guessable body), and seals the kept answers (they hold access
	// tokens and personal data). At least 32 bytes, the same on every replica: the server's
	// secret key.
	Secret []byte
	// Retention is how long an answer is replayed; 0 means idempotency.DefaultRetention.
	Retention time.Duration
}

// unkeyedRoutes never honour Idempotency-Key. generate_qrcode's answer is a new TOTP secret: a
// retry makes another one, which replaces the first, rather than have a secret kept for replay.
var unkeyedRoutes = map[string]bool{
	http.MethodPost + " /api/v2/resource/otp/generate_qrcode": true,
	// A refresh from a cookie has no body: two browsers' refreshes with one key would look alike,
	// and a retry of a rotation is a reuse anyway.
	http.MethodPost + " /api/v2/identity/sessions/refresh": true,
	// An upload is larger than a kept request may be; its file is content-addressed, so a retry
	// stores no second file (it records a second document of it).
	http.MethodPost + " /api/v2/resource/documents": true,
	// The answer holds the new API key's secret, which is shown once and never kept.
	http.MethodPost + " /api/v2/resource/api_keys": true,
	// An introspection answers for now: a kept "active" would outlive a sign-out.
	http.MethodPost + " /api/v2/identity/introspect": true,
	// The authz endpoint decides every request anew (gatekeeper.go); a gateway passes the client's
	// headers on, Idempotency-Key included, and a kept "let through" would outlive a ban.
	http.MethodPost + " /api/v2/auth/{path:.*}":   true,
	http.MethodPut + " /api/v2/auth/{path:.*}":    true,
	http.MethodPatch + " /api/v2/auth/{path:.*}":  true,
	http.MethodDelete + " /api/v2/auth/{path:.*}": true,
}

// keptHeaders are the headers of a first answer that its replays carry again.
var keptHeaders = []string{"Content-Type", "Cache-Control", "Location", "Total", "Page", "Per-Page"}

// idempotentRequests is the decorator that makes every route honour Idempotency-Key: it is put
// on the whole router, so no route, present or future, can forget it.
//
// A request's claim is a keyed hash of its caller, method, route and key, and for an anonymous
// caller also of its fingerprint (a keyed hash of its path, query and body): anonymous callers
// cannot be told apart, so only the very same request is a retry, and a key never crosses from
// one anonymous caller to another. The first request with a claim runs; its answer, if a
// success, is kept sealed with the claim for the retention; a retry with the same fingerprint
// gets it with Idempotent-Replayed: true, one with another fingerprint 422 idempotency.key_reused.
// Concurrent duplicates wait for the first. A failed first request keeps nothing: a retry runs.
type idempotentRequests struct {
	keeper          *idempotency.Keeper
	claimKey, fpKey []byte
	sealer          *auth.Sealer
	authn           *Authenticator
	log             *slog.Logger
}

// newIdempotentRequests panics on a missing store, a short secret or a negative retention: the
// binary checks its configuration before, so only a wiring mistake gets here.
func newIdempotentRequests(o *Idempotency, authn *Authenticator, log *slog.Logger) *idempotentRequests {
	if o == nil {
		// Tests and a single process: claims in memory, under a secret nobody else has.
		log.Warn("idempotent answers are kept in memory only: a restart or another replica forgets them")
		secret := make([]byte, 32)
		rand.Read(secret)
		o = &Idempotency{Store: idempotency.NewMemoryStore(), Secret: secret}
	}
	if o.Store == nil {
		panic("api: Idempotency needs a Store")
	}
	if len(o.Secret) < 32 {
		panic(fmt.Sprintf("api: idempotency secret of %d bytes, want at least 32", len(o.Secret)))
	}
	keeper, err := idempotency.NewKeeper(idempotency.Options{Store: o.Store, Retention: o.Retention, Logger: log})
	if err != nil {
		panic(err)
	}
	sealer, err := auth.NewSealer(derive(o.Secret, "answers"))
	if err != nil {
		panic(err) // not reachable: derive gives 32 bytes
	}
	return &idempotentRequests{
		keeper: keeper, claimKey: derive(o.Secret, "claims"), fpKey: derive(o.Secret, "fingerprints"),
		sealer: sealer, authn: authn, log: log,
	}
}

// derive gives each use of the secret a key of its own.
func derive(secret []byte, use string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("idlog idempotency v1 " + use))
	return m.Sum(nil)
}

// validIdempotencyKey accepts 1-255 printable ASCII characters.
func validIdempotencyKey(k string) bool {
	if k == "" || len(k) > 255 {
		return false
	}
	for _, c := range []byte(k) {
		if c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}

type commandKeyCtx struct{}

// commandKey is the idempotency key the commands of a request get: a keyed hash of caller,
// route, key and fingerprint, never the client's key, so that the claim a command makes in the
// event store is bound to the request too, and outlives the kept answer. "" without a key.
func commandKey(ctx context.Context) string {
	k, _ := ctx.Value(commandKeyCtx{}).(string)
	return k
}

// middleware runs inside the router, where the route is known, before any route's own bearer
// middleware: it finds the caller itself, and hands them on so the token is checked once.
func (d *idempotentRequests) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get(IdempotencyKeyHeader)
		if key == "" || r.Method == http.MethodGet || r.Method == http.MethodHead || r.Method == http.MethodOptions {
			next.ServeHTTP(w, r)
			return
		}
		route := r.URL.Path
		if cur := mux.CurrentRoute(r); cur != nil {
			route, _ = cur.GetPathTemplate()
		}
		if unkeyedRoutes[r.Method+" "+route] {
			next.ServeHTTP(w, r)
			return
		}
		if !validIdempotencyKey(key) {
			WriteError(w, http.StatusUnprocessableEntity, "idempotency.invalid_key")
			return
		}
		body, err := readBody(r)
		if err != nil {
			status, code := errorStatus("", err)
			WriteError(w, status, code)
			return
		}
		// A request without a valid token is anonymous here; its route answers 401 if it needs
		// one. A genuine token whose session is closed still names its user: the retry of a
		// sign-out gets the sign-out's answer.
		caller, uid, signedIn := d.authn.caller(r)
		if signedIn {
			r = r.WithContext(WithCaller(r.Context(), caller))
		}
		fp := d.fingerprint(r, body)
		claim := d.claim(uid, r.Method, route, key, fp)

		c, sealed, err := d.keeper.Begin(r.Context(), claim, fp)
		switch {
		case errors.Is(err, idempotency.ErrKeyReused):
			WriteError(w, http.StatusUnprocessableEntity, "idempotency.key_reused")
			return
		case err != nil:
			d.fail(w, r, err)
			return
		case c == nil:
			d.replay(w, r, claim, sealed)
			return
		}

		done := false
		defer func() {
			if !done { // a panic: let a retry run
				d.end(r, c, nil)
			}
		}()
		rec := &recordingWriter{ResponseWriter: w}
		next.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), commandKeyCtx{}, d.commandKey(claim, fp))))
		done = true
		if rec.status < 200 || rec.status > 299 {
			d.end(r, c, nil)
			return
		}
		d.end(r, c, d.seal(claim, rec))
	})
}

func (d *idempotentRequests) fingerprint(r *http.Request, body []byte) []byte {
	m := hmac.New(sha256.New, d.fpKey)
	// The path, query and content type are part of the request: the same key sent to another user's wallet
	// (/admin/wallets/{uid}/credits) or with another ?uid= is a reuse, not a retry.
	m.Write([]byte(r.Method + "\x00" + r.URL.RequestURI() + "\x00" + r.Header.Get("Content-Type") + "\x00"))
	m.Write(body)
	return m.Sum(nil)
}

func (d *idempotentRequests) claim(uid, method, route, key string, fp []byte) string {
	m := hmac.New(sha256.New, d.claimKey)
	if uid != "" {
		m.Write([]byte("user\x00" + uid + "\x00" + method + "\x00" + route + "\x00" + key))
	} else {
		m.Write([]byte("anonymous\x00" + method + "\x00" + route + "\x00" + key + "\x00"))
		m.Write(fp)
	}
	return hex.EncodeToString(m.Sum(nil))
}

func (d *idempotentRequests) commandKey(claim string, fp []byte) string {
	m := hmac.New(sha256.New, d.claimKey)
	m.Write([]byte("command\x00" + claim + "\x00"))
	m.Write(fp)
	return "http:" + hex.EncodeToString(m.Sum(nil))
}

// keptAnswer is what is sealed and kept of a first answer.
type keptAnswer struct {
	Status int         `json:"status"`
	Header http.Header `json:"header,omitempty"`
	Body   []byte      `json:"body"`
}

func (d *idempotentRequests) seal(claim string, rec *recordingWriter) []byte {
	a := keptAnswer{Status: rec.status, Header: http.Header{}, Body: rec.body.Bytes()}
	for _, h := range keptHeaders {
		if vs := rec.Header().Values(h); len(vs) > 0 {
			a.Header[h] = vs
		}
	}
	plain, err := json.Marshal(a)
	if err != nil {
		return nil // not reachable: every field encodes
	}
	// The claim as additional data: a sealed answer copied to another claim does not open.
	return d.sealer.Seal(plain, []byte(claim))
}

// end completes the claim with the sealed answer, or releases it (nil), whatever became of the
// request's context: the answer is sent, a retry must find it.
func (d *idempotentRequests) end(r *http.Request, c *idempotency.Claim, sealed []byte) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 10*time.Second)
	defer cancel()
	var err error
	if sealed != nil {
		err = c.Complete(ctx, sealed)
	} else {
		err = c.Release(ctx)
	}
	if err != nil {
		// The command's own claim in the event store still keeps a retry from appending again.
		d.log.LogAttrs(ctx, slog.LevelError, "keeping an idempotent answer failed",
			slog.String("request_id", RequestID(ctx)), slog.Any("error", err))
	}
}

func (d *idempotentRequests) replay(w http.ResponseWriter, r *http.Request, claim string, sealed []byte) {
	var a keptAnswer
	plain, err := d.sealer.Open(sealed, []byte(claim))
	if err == nil {
		err = json.Unmarshal(plain, &a)
	}
	if err != nil {
		// Sealed under another secret: replicas must share the server's secret key.
		d.fail(w, r, fmt.Errorf("api: open a kept answer: %w", err))
		return
	}
	for k, vs := range a.Header {
		w.Header()[k] = vs
	}
	w.Header().Set(IdempotentReplayedHeader, "true")
	w.WriteHeader(a.Status)
	_, _ = w.Write(a.Body)
}

func (d *idempotentRequests) fail(w http.ResponseWriter, r *http.Request, err error) {
	status, code := errorStatus("", err)
	if status >= 500 {
		d.log.LogAttrs(r.Context(), slog.LevelError, "idempotency check failed",
			slog.String("request_id", RequestID(r.Context())), slog.String("code", code), slog.Any("error", err))
	}
	WriteError(w, status, code)
}

// recordingWriter passes a response through and keeps a copy of it.
type recordingWriter struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (w *recordingWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recordingWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.body.Write(b)
	return w.ResponseWriter.Write(b)
}

func (w *recordingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
