package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// DefaultRequestTimeout bounds how long a request may take before its answer starts.
const DefaultRequestTimeout = 10 * time.Second

// errRequestTimeout is the cause of a request context cancelled at its deadline.
var errRequestTimeout = errors.New("api: request deadline passed")

// withDeadline answers 503 server.unavailable to a request whose answer has not started within
// timeout, and cancels its context so that waits on the database (for a pooled connection, a
// lock) end. The handler runs on a goroutine of its own: a driver blocked on a socket that a
// frozen database never answers does not see its context, and the client must get its 503 anyway.
// What the handler writes after that is dropped. An answer that has started (an event stream)
// runs to its end: the deadline bounds the wait for the first byte, not a download.
func withDeadline(log *slog.Logger, timeout time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithCancelCause(r.Context())
		defer cancel(nil)
		gw := &guardedWriter{w: w, header: make(http.Header)}
		done := make(chan struct{})
		aborted := make(chan any, 1)
		go func() {
			defer func() {
				// recoverPanics, inside, answers every panic but this one, which asks net/http
				// to drop the connection: it must reach net/http on the serving goroutine.
				if p := recover(); p != nil {
					aborted <- p
					return
				}
				close(done)
			}()
			next.ServeHTTP(gw, r.WithContext(ctx))
		}()
		timer := time.NewTimer(timeout)
		defer timer.Stop()
		select {
		case <-done:
			return
		case p := <-aborted:
			panic(p)
		case <-timer.C:
		}
		if gw.expire() {
			cancel(errRequestTimeout)
			log.LogAttrs(r.Context(), slog.LevelWarn, "request deadline passed",
				slog.String("request_id", RequestID(r.Context())), slog.Duration("timeout", timeout))
			WriteError(w, http.StatusServiceUnavailable, "server.unavailable")
			return
		}
		select { // the answer is under way
		case <-done:
		case p := <-aborted:
			panic(p)
		}
	})
}

// guardedWriter passes a handler's answer through until the deadline takes the response over.
// The handler gets a header map of its own, copied when its answer starts, so the two goroutines
// never share one.
type guardedWriter struct {
	mu      sync.Mutex
	w       http.ResponseWriter
	header  http.Header
	started bool // the handler's status went out: the deadline no longer applies
	expired bool // the deadline answered: the handler's writes are dropped
}

func (g *guardedWriter) Header() http.Header { return g.header }

// begin sends the handler's headers; the caller holds mu.
func (g *guardedWriter) begin(code int) {
	dst := g.w.Header()
	for k, v := range g.header {
		dst[k] = v
	}
	if code >= 200 { // 1xx are interim, the final status follows
		g.started = true
	}
}

func (g *guardedWriter) WriteHeader(code int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.expired || g.started {
		return
	}
	g.begin(code)
	g.w.WriteHeader(code)
}

func (g *guardedWriter) Write(b []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.expired {
		return 0, http.ErrHandlerTimeout
	}
	if !g.started {
		g.begin(http.StatusOK)
	}
	return g.w.Write(b)
}

// FlushError lets http.ResponseController flush a stream through the guard.
func (g *guardedWriter) FlushError() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.expired {
		return http.ErrHandlerTimeout
	}
	if !g.started {
		g.begin(http.StatusOK)
		g.w.WriteHeader(http.StatusOK)
	}
	return http.NewResponseController(g.w).Flush()
}

// wroteHeader tells recoverPanics whether a status went out already.
func (g *guardedWriter) wroteHeader() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.started || g.expired
}

// expire takes the response over unless the handler's answer has started.
func (g *guardedWriter) expire() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.started {
		return false
	}
	g.expired = true
	return true
}
