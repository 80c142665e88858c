package api

import (
	"bytes"
	"container/list"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/mux"
)

// IdempotencyKeyHeader names the key a client sends to make a retried request safe.
const IdempotencyKeyHeader = "Idempotency-Key"

// Defaults of the idempotency cache.
const (
	DefaultIdempotencyTTL     = 24 * time.Hour
	DefaultIdempotencyEntries = 10000
)

// idempotencyCache keeps the first successful response to each (route, caller, key), so that a
// retried request gets that response again, byte for byte, and appends nothing. Requests with the
// same key that arrive while the first runs wait for it.
//
// It lives in memory: after a restart, or on another server, the command layer still recognises a
// retry (it claims the key in the event store with the events) and appends nothing, and the
// answer is rebuilt from the current state instead of replayed. The fingerprint of the body is a
// keyed hash (the key never leaves the process), so a body with a password in it cannot be guessed
// back from the cache.
type idempotencyCache struct {
	ttl     time.Duration
	max     int
	hmacKey []byte

	mu      sync.Mutex
	entries map[string]*list.Element // of *idemEntry, oldest first
	order   *list.List
}

type idemEntry struct {
	key         string
	fingerprint []byte
	done        chan struct{} // closed when the first request finished
	resp        *storedResponse
	expires     time.Time
}

type storedResponse struct {
	status int
	header http.Header
	body   []byte
}

func newIdempotencyCache(ttl time.Duration, max int) *idempotencyCache {
	if ttl <= 0 {
		ttl = DefaultIdempotencyTTL
	}
	if max <= 0 {
		max = DefaultIdempotencyEntries
	}
	key := make([]byte, 32)
	rand.Read(key)
	return &idempotencyCache{ttl: ttl, max: max, hmacKey: key, entries: map[string]*list.Element{}, order: list.New()}
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

// wrap makes h idempotent for requests that carry the header. It runs inside the router (for the
// route template) and after the bearer middleware (for the caller).
func (c *idempotencyCache) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get(IdempotencyKeyHeader)
		if key == "" {
			h.ServeHTTP(w, r)
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
		route := r.URL.Path
		if cur := mux.CurrentRoute(r); cur != nil {
			route, _ = cur.GetPathTemplate()
		}
		caller, _ := CallerFrom(r.Context())
		id := r.Method + " " + route + "\x00" + caller.UID + "\x00" + key
		mac := hmac.New(sha256.New, c.hmacKey)
		// The path and query are part of the request: the same key sent to another user's wallet
		// (/admin/wallets/{uid}/credits) or with another ?uid= is a reuse, not a retry.
		mac.Write([]byte(r.URL.RequestURI() + "\x00"))
		mac.Write(body)
		fp := mac.Sum(nil)

		for {
			e, first := c.begin(id, fp)
			if first {
				rec := &recordingWriter{ResponseWriter: w}
				completed := false
				defer func() {
					if !completed {
						c.finish(e, nil) // a panic: let waiters run the request themselves
					}
				}()
				h.ServeHTTP(rec, r)
				completed = true
				var resp *storedResponse
				if rec.status >= 200 && rec.status < 300 {
					resp = &storedResponse{status: rec.status, header: rec.Header().Clone(), body: rec.body.Bytes()}
				}
				c.finish(e, resp)
				return
			}
			select {
			case <-e.done:
			case <-r.Context().Done():
				WriteError(w, http.StatusServiceUnavailable, "server.unavailable")
				return
			}
			if !hmac.Equal(e.fingerprint, fp) {
				WriteError(w, http.StatusUnprocessableEntity, "idempotency.key_reused")
				return
			}
			if e.resp != nil {
				replay(w, e.resp)
				return
			}
			// The first attempt failed: this one runs (the loop makes it the first now).
		}
	})
}

// begin returns the live entry of id, or makes one and reports that the caller runs the request.
func (c *idempotencyCache) begin(id string, fp []byte) (*idemEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if el, ok := c.entries[id]; ok {
		e := el.Value.(*idemEntry)
		if e.expires.IsZero() || now.Before(e.expires) {
			return e, false
		}
		c.order.Remove(el)
		delete(c.entries, id)
	}
	// Forget expired entries, then the oldest finished ones if still full.
	for el := c.order.Front(); el != nil && len(c.entries) >= c.max; {
		next := el.Next()
		e := el.Value.(*idemEntry)
		if !e.expires.IsZero() {
			c.order.Remove(el)
			delete(c.entries, e.key)
		}
		el = next
	}
	e := &idemEntry{key: id, fingerprint: fp, done: make(chan struct{})}
	c.entries[id] = c.order.PushBack(e)
	return e, true
}

// finish stores the response (nil: nothing to replay, forget the key) and wakes the waiters.
func (c *idempotencyCache) finish(e *idemEntry, resp *storedResponse) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e.resp = resp
	e.expires = time.Now().Add(c.ttl)
	if resp == nil {
		if el, ok := c.entries[e.key]; ok && el.Value == e {
			c.order.Remove(el)
			delete(c.entries, e.key)
		}
	}
	close(e.done)
}

func replay(w http.ResponseWriter, s *storedResponse) {
	for k, vs := range s.header {
		if k == RequestIDHeader {
			continue // the retry has its own request id
		}
		w.Header()[k] = vs
	}
	w.Header().Set("Idempotent-Replayed", "true")
	w.WriteHeader(s.status)
	_, _ = w.Write(s.body)
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
