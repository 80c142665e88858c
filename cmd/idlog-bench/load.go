package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// client is the HTTP side: one shared transport with enough idle connections for every worker,
// so the run measures idlog, not TCP handshakes.
type client struct {
	base string
	hc   *http.Client
}

func newClient(base string, workers int, timeout time.Duration) *client {
	tr := &http.Transport{MaxIdleConns: workers * 2, MaxIdleConnsPerHost: workers * 2, IdleConnTimeout: time.Minute}
	return &client{base: base, hc: &http.Client{Transport: tr, Timeout: timeout}}
}

// do sends one request with a JSON body (nil: none) and decodes a 2xx JSON answer into out (nil:
// discard). It returns the status, 0 if no answer came.
func (c *client) do(ctx context.Context, method, path, token string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, bytes.TrimSpace(b))
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	return resp.StatusCode, nil
}

// benchUser is a user of the pool the signed-in operations act as.
type benchUser struct {
	uid, email, token string
	labels            atomic.Int64
}

type sessionJSON struct {
	AccessToken string `json:"access_token"`
	User        struct {
		UID string `json:"uid"`
	} `json:"user"`
}

// password is long and random enough for any strength rule; every bench user shares it.
func newPassword() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return "bench " + hex.EncodeToString(b) + " correct horse battery"
}

func runID() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// recorder keeps every latency of one operation and its outcomes by status.
type recorder struct {
	mu        sync.Mutex
	latencies []time.Duration
	statuses  map[int]int
	lastErr   string
}

func (r *recorder) add(d time.Duration, status int, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.statuses == nil {
		r.statuses = map[int]int{}
	}
	r.statuses[status]++
	if err == nil {
		r.latencies = append(r.latencies, d)
	} else {
		r.lastErr = err.Error()
	}
}

// loadRun is one run of the mix.
type loadRun struct {
	cfg      config
	c        *client
	run      string
	password string
	users    []*benchUser
	signups  atomic.Int64
	recs     map[string]*recorder
}

// setup signs the pool of users up and in, gives each a label to change, and, with an admin,
// credits their wallets so spends never run dry. It is not measured.
func (l *loadRun) setup(ctx context.Context, adminToken string) error {
	l.users = make([]*benchUser, l.cfg.Users)
	errs := make(chan error, len(l.users))
	sem := make(chan struct{}, l.cfg.Clients)
	for i := range l.users {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			u := &benchUser{email: fmt.Sprintf("bench-%s-pool-%d@example.com", l.run, i)}
			l.users[i] = u
			errs <- l.prepare(ctx, u, adminToken)
		}()
	}
	var first error
	for range l.users {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

func (l *loadRun) prepare(ctx context.Context, u *benchUser, adminToken string) error {
	if _, err := l.c.do(ctx, http.MethodPost, "/api/v2/identity/users", "", map[string]string{"email": u.email, "password": l.password}, nil); err != nil {
		return fmt.Errorf("setup: sign up: %w", err)
	}
	var s sessionJSON
	if _, err := l.c.do(ctx, http.MethodPost, "/api/v2/identity/sessions", "", map[string]string{"login": u.email, "password": l.password}, &s); err != nil {
		return fmt.Errorf("setup: sign in: %w", err)
	}
	u.uid, u.token = s.User.UID, s.AccessToken
	if _, err := l.c.do(ctx, http.MethodPost, "/api/v2/resource/labels", u.token, map[string]string{"key": "bench", "value": "v00000"}, nil); err != nil {
		return fmt.Errorf("setup: add label: %w", err)
	}
	if adminToken != "" {
		body := map[string]any{"balance": "standard", "amount": "1000000", "reason": "deposit", "reference": "bench-" + l.run}
		if _, err := l.c.do(ctx, http.MethodPost, "/api/v2/admin/wallets/"+u.uid+"/credits", adminToken, body, nil); err != nil {
			return fmt.Errorf("setup: credit wallet: %w", err)
		}
	}
	return nil
}

// drive runs the mix from cfg.Clients workers until the request budget or the duration is spent,
// and returns how long it took.
func (l *loadRun) drive(ctx context.Context) time.Duration {
	w := newWeighted(l.cfg.Mix)
	l.recs = map[string]*recorder{}
	for _, op := range w.ops {
		l.recs[op] = &recorder{}
	}
	var budget atomic.Int64
	budget.Store(int64(l.cfg.Requests))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if l.cfg.Requests == 0 {
		ctx, cancel = context.WithTimeout(ctx, l.cfg.Duration)
		defer cancel()
	}
	start := time.Now()
	var wg sync.WaitGroup
	for i := range l.cfg.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := mrand.New(mrand.NewPCG(uint64(i), uint64(start.UnixNano())))
			for ctx.Err() == nil {
				if l.cfg.Requests > 0 && budget.Add(-1) < 0 {
					return
				}
				op := w.pick(rnd.IntN(w.total()))
				t := time.Now()
				status, err := l.one(ctx, op, rnd)
				if ctx.Err() != nil && status == 0 {
					return // cut off by the end of the run, not an answer
				}
				l.recs[op].add(time.Since(t), status, err)
			}
		}()
	}
	wg.Wait()
	return time.Since(start)
}

// one sends one request of the operation.
func (l *loadRun) one(ctx context.Context, op string, rnd *mrand.Rand) (int, error) {
	u := l.users[rnd.IntN(len(l.users))]
	switch op {
	case opSignUp:
		n := l.signups.Add(1)
		return l.c.do(ctx, http.MethodPost, "/api/v2/identity/users", "", map[string]string{
			"email": fmt.Sprintf("bench-%s-%d@example.com", l.run, n), "password": l.password,
		}, nil)
	case opSignIn:
		return l.c.do(ctx, http.MethodPost, "/api/v2/identity/sessions", "", map[string]string{"login": u.email, "password": l.password}, nil)
	case opMe:
		return l.c.do(ctx, http.MethodGet, "/api/v2/resource/users/me", u.token, nil, nil)
	case opLabel:
		v := "v" + strconv.FormatInt(u.labels.Add(1), 10) + "-" + l.run
		return l.c.do(ctx, http.MethodPatch, "/api/v2/resource/labels/bench", u.token, map[string]string{"value": v}, nil)
	case opSpend:
		return l.c.do(ctx, http.MethodPost, "/api/v2/resource/wallet/spend", u.token, map[string]string{"amount": "1", "reference": "bench-" + l.run}, nil)
	case opActivity:
		return l.c.do(ctx, http.MethodGet, "/api/v2/resource/users/activity/all?limit=10", u.token, nil, nil)
	}
	return 0, errors.New("unknown operation " + op)
}
