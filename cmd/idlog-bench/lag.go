package main

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// projectionStatus is the part of GET /api/v2/admin/projections the report uses.
type projectionStatus struct {
	Name       string  `json:"name"`
	LagEvents  int64   `json:"lag_events"`
	LagSeconds float64 `json:"lag_seconds"`
}

// ProjectionLag is what one projector's lag was during the run, sampled every interval.
type ProjectionLag struct {
	Name          string  `json:"name"`
	Samples       int     `json:"samples"`
	MaxLagEvents  int64   `json:"max_lag_events"`
	MeanLagEvents float64 `json:"mean_lag_events"`
	MaxLagSeconds float64 `json:"max_lag_seconds"`
}

// projectionSampler polls the projections' status with an admin token.
type projectionSampler struct {
	mu    sync.Mutex
	lags  map[string]*ProjectionLag
	sums  map[string]int64
	order []string
	errs  int
}

func (p *projectionSampler) run(ctx context.Context, c *client, token string, every time.Duration) {
	p.lags, p.sums = map[string]*ProjectionLag{}, map[string]int64{}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		p.sample(ctx, c, token)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (p *projectionSampler) sample(ctx context.Context, c *client, token string) {
	var st []projectionStatus
	if _, err := c.do(ctx, http.MethodGet, "/api/v2/admin/projections", token, nil, &st); err != nil {
		if ctx.Err() == nil {
			p.mu.Lock()
			p.errs++
			p.mu.Unlock()
		}
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range st {
		l, ok := p.lags[s.Name]
		if !ok {
			l = &ProjectionLag{Name: s.Name}
			p.lags[s.Name] = l
			p.order = append(p.order, s.Name)
		}
		l.Samples++
		l.MaxLagEvents = max(l.MaxLagEvents, s.LagEvents)
		l.MaxLagSeconds = max(l.MaxLagSeconds, s.LagSeconds)
		p.sums[s.Name] += max(s.LagEvents, 0)
	}
}

func (p *projectionSampler) result() []ProjectionLag {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]ProjectionLag, 0, len(p.order))
	for _, n := range p.order {
		l := *p.lags[n]
		if l.Samples > 0 {
			l.MeanLagEvents = float64(p.sums[n]) / float64(l.Samples)
		}
		out = append(out, l)
	}
	return out
}

// natsLag receives every CloudEvent on idlog.events.> and measures how long after the event was
// recorded (its `time`) it arrived: the relay's delay plus NATS's, on one machine's clock.
type natsLag struct {
	mu       sync.Mutex
	lags     []time.Duration
	bad      int
	last     time.Time
	nc       *nats.Conn
	sub      *nats.Subscription
	received int
}

func startNATSLag(url, creds string) (*natsLag, error) {
	opts := []nats.Option{nats.Name("idlog-bench"), nats.Timeout(5 * time.Second)}
	if creds != "" {
		opt, err := nats.NkeyOptionFromSeed(creds)
		if err != nil {
			return nil, err
		}
		opts = append(opts, opt)
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, err
	}
	n := &natsLag{nc: nc}
	n.sub, err = nc.Subscribe("idlog.events.>", func(m *nats.Msg) {
		now := time.Now()
		var ce struct {
			Time time.Time `json:"time"`
		}
		n.mu.Lock()
		defer n.mu.Unlock()
		n.received++
		n.last = now
		if json.Unmarshal(m.Data, &ce) != nil || ce.Time.IsZero() {
			n.bad++
			return
		}
		n.lags = append(n.lags, now.Sub(ce.Time))
	})
	if err != nil {
		nc.Close()
		return nil, err
	}
	// A slow consumer would drop messages and understate the lag: allow a deep pending queue.
	_ = n.sub.SetPendingLimits(1<<20, 1<<30)
	return n, nc.Flush()
}

// drain waits until no message has come for quiet (the relay caught up), or until limit, and
// returns how long it waited.
func (n *natsLag) drain(quiet, limit time.Duration) time.Duration {
	start := time.Now()
	for time.Since(start) < limit {
		n.mu.Lock()
		idle := time.Since(n.last)
		n.mu.Unlock()
		if idle >= quiet {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Since(start)
}

func (n *natsLag) close() {
	_ = n.sub.Unsubscribe()
	n.nc.Close()
}

// NATSLag summarises the end-to-end lag of the events received.
type NATSLag struct {
	Events     int     `json:"events"`
	Undecoded  int     `json:"undecoded"`
	Dropped    int     `json:"dropped"`
	P50Ms      float64 `json:"p50_ms"`
	P95Ms      float64 `json:"p95_ms"`
	P99Ms      float64 `json:"p99_ms"`
	MaxMs      float64 `json:"max_ms"`
	DrainAfter float64 `json:"drain_after_load_s"`
}

func (n *natsLag) result(drain time.Duration) NATSLag {
	n.mu.Lock()
	defer n.mu.Unlock()
	dropped, _ := n.sub.Dropped()
	p := percentiles(n.lags)
	return NATSLag{Events: n.received, Undecoded: n.bad, Dropped: dropped, P50Ms: ms(p.p50), P95Ms: ms(p.p95), P99Ms: ms(p.p99), MaxMs: ms(p.max), DrainAfter: drain.Seconds()}
}
