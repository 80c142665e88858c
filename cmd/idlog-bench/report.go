package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is one run: the JSON of --json, and the table otherwise.
type Report struct {
	Target      string          `json:"target"`
	StartedAt   time.Time       `json:"started_at"`
	Clients     int             `json:"clients"`
	Users       int             `json:"users"`
	Mix         map[string]int  `json:"mix"`
	ElapsedSec  float64         `json:"elapsed_s"`
	TotalPerSec float64         `json:"total_per_second"`
	Ops         []OpStats       `json:"operations"`
	Projections []ProjectionLag `json:"projection_lag,omitempty"`
	ProjDrain   float64         `json:"projections_caught_up_after_load_s,omitempty"`
	NATS        *NATSLag        `json:"nats_lag,omitempty"`
	Insert      *InsertBaseline `json:"insert_baseline,omitempty"`
	Hash        HashBound       `json:"hash_bound"`
	Notes       []string        `json:"notes,omitempty"`
}

// OpStats is one operation's outcome: answers by status (0: no answer), latency of the 2xx ones.
type OpStats struct {
	Op        string         `json:"op"`
	Requests  int            `json:"requests"`
	OK        int            `json:"ok"`
	PerSecond float64        `json:"ok_per_second"`
	P50Ms     float64        `json:"p50_ms"`
	P95Ms     float64        `json:"p95_ms"`
	P99Ms     float64        `json:"p99_ms"`
	Errors    map[string]int `json:"errors,omitempty"`
	LastError string         `json:"last_error,omitempty"`
}

type pct struct{ p50, p95, p99, max time.Duration }

// percentiles by nearest rank; ds is sorted in place.
func percentiles(ds []time.Duration) pct {
	if len(ds) == 0 {
		return pct{}
	}
	slices.Sort(ds)
	at := func(q float64) time.Duration {
		i := int(q*float64(len(ds))+0.999999) - 1
		return ds[min(max(i, 0), len(ds)-1)]
	}
	return pct{at(0.50), at(0.95), at(0.99), ds[len(ds)-1]}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// bench runs the whole thing: setup, load with the lag samplers, then the baselines while the
// server is idle, so they measure the database and the cores rather than the contention.
func bench(ctx context.Context, cfg config, log io.Writer) (*Report, error) {
	c := newClient(cfg.URL, cfg.Clients+2, cfg.Timeout)
	if st, err := c.do(ctx, http.MethodGet, "/healthz", "", nil, nil); err != nil {
		return nil, fmt.Errorf("server at %s: %d %w", cfg.URL, st, err)
	}
	rep := &Report{Target: cfg.URL, StartedAt: time.Now().UTC(), Clients: cfg.Clients, Users: cfg.Users, Mix: cfg.Mix}
	var adminToken string
	if cfg.AdminEmail != "" {
		var s sessionJSON
		if _, err := c.do(ctx, http.MethodPost, "/api/v2/identity/sessions", "", map[string]string{"login": cfg.AdminEmail, "password": cfg.AdminPass}, &s); err != nil {
			return nil, fmt.Errorf("admin sign-in: %w", err)
		}
		adminToken = s.AccessToken
	} else {
		rep.Notes = append(rep.Notes, "no admin: projection lag not measured, wallets hold only the sign-up bonus (spends fail with 422 once it is gone)")
	}
	l := &loadRun{cfg: cfg, c: c, run: runID(), password: newPassword()}
	fmt.Fprintf(log, "idlog-bench: run %s: setting up %d users\n", l.run, cfg.Users)
	if err := l.setup(ctx, adminToken); err != nil {
		return nil, err
	}

	sctx, stopSamplers := context.WithCancel(ctx)
	defer stopSamplers()
	var nl *natsLag
	if cfg.NATSURL != "" {
		var err error
		if nl, err = startNATSLag(cfg.NATSURL, cfg.NATSCreds); err != nil {
			return nil, fmt.Errorf("nats %s: %w", redact(cfg.NATSURL), err)
		}
		defer nl.close()
	} else {
		rep.Notes = append(rep.Notes, "no -nats-url: NATS lag not measured")
	}
	ps := &projectionSampler{}
	psDone := make(chan struct{})
	if adminToken != "" {
		go func() { defer close(psDone); ps.run(sctx, c, adminToken, 250*time.Millisecond) }()
	} else {
		close(psDone)
	}

	fmt.Fprintf(log, "idlog-bench: load: %d clients\n", cfg.Clients)
	el := l.drive(ctx)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	rep.ElapsedSec = el.Seconds()
	total := 0
	for _, op := range allOps {
		r, ok := l.recs[op]
		if !ok {
			continue
		}
		s := OpStats{Op: op, LastError: r.lastErr}
		for st, n := range r.statuses {
			s.Requests += n
			if st/100 == 2 {
				s.OK += n
				continue
			}
			if s.Errors == nil {
				s.Errors = map[string]int{}
			}
			key := fmt.Sprint(st)
			if st == 0 {
				key = "no_answer"
			}
			s.Errors[key] += n
		}
		p := percentiles(r.latencies)
		s.PerSecond = float64(s.OK) / el.Seconds()
		s.P50Ms, s.P95Ms, s.P99Ms = ms(p.p50), ms(p.p95), ms(p.p99)
		total += s.OK
		rep.Ops = append(rep.Ops, s)
	}
	rep.TotalPerSec = float64(total) / el.Seconds()

	// After the load: how long until the followers have everything.
	if adminToken != "" {
		t := time.Now()
		for time.Since(t) < time.Minute {
			var st []projectionStatus
			if _, err := c.do(ctx, http.MethodGet, "/api/v2/admin/projections", adminToken, nil, &st); err == nil && caughtUp(st) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		rep.ProjDrain = time.Since(t).Seconds()
	}
	stopSamplers()
	<-psDone
	rep.Projections = ps.result()
	if nl != nil {
		d := nl.drain(time.Second, time.Minute)
		r := nl.result(max(d-time.Second, 0))
		rep.NATS = &r
	}

	fmt.Fprintf(log, "idlog-bench: baselines\n")
	ib, err := insertBaseline(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if ib == nil {
		rep.Notes = append(rep.Notes, "no -database-url or -sqlite: INSERT baseline not measured")
	}
	rep.Insert = ib
	rep.Hash = hashBound(ctx, cfg.Argon2, cfg.Baseline)
	return rep, nil
}

func caughtUp(st []projectionStatus) bool {
	for _, s := range st {
		if s.LagEvents != 0 {
			return false
		}
	}
	return len(st) > 0
}

func (r *Report) writeTable(w io.Writer) {
	fmt.Fprintf(w, "idlog-bench %s: %d clients, %d pool users, %.1fs, %.1f ok/s in all\n\n", r.Target, r.Clients, r.Users, r.ElapsedSec, r.TotalPerSec)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "op\trequests\tok\tok/s\tp50 ms\tp95 ms\tp99 ms\terrors\t")
	for _, s := range r.Ops {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%s\t\n", s.Op, s.Requests, s.OK, s.PerSecond, s.P50Ms, s.P95Ms, s.P99Ms, errorsText(s.Errors))
	}
	_ = tw.Flush()
	if len(r.Projections) > 0 {
		fmt.Fprintf(w, "\nprojection lag during the load (all caught up %.2fs after it)\n", r.ProjDrain)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "projector\tsamples\tmax events\tmean events\tmax s\t")
		for _, p := range r.Projections {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%.1f\t%.3f\t\n", p.Name, p.Samples, p.MaxLagEvents, p.MeanLagEvents, p.MaxLagSeconds)
		}
		_ = tw.Flush()
	}
	if n := r.NATS; n != nil {
		fmt.Fprintf(w, "\nNATS end-to-end lag (recorded -> received): %d events, p50 %.1f ms, p95 %.1f ms, p99 %.1f ms, max %.1f ms; relay drained %.2fs after the load; dropped %d\n",
			n.Events, n.P50Ms, n.P95Ms, n.P99Ms, n.MaxMs, n.DrainAfter, n.Dropped)
	}
	fmt.Fprintln(w, "\nbaselines (same run, server idle)")
	if b := r.Insert; b != nil {
		fmt.Fprintf(w, "  %s one-row INSERT per transaction, %d connection(s): %.0f rows/s, p50 %.2f ms, p95 %.2f ms, p99 %.2f ms\n", b.Database, b.Connections, b.PerSecond, b.P50Ms, b.P95Ms, b.P99Ms)
	}
	h := r.Hash
	fmt.Fprintf(w, "  argon2id m=%d KiB t=%d p=%d: one hash %.1f ms, bound %d cores / %.1f ms = %.1f password ops/s (measured in parallel: %.1f/s)\n",
		h.Params.MemoryKiB, h.Params.Iterations, h.Params.Parallelism, h.OneHashMs, h.Cores, h.OneHashMs, h.BoundPerSec, h.ParallelRate)
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}

func errorsText(m map[string]int) string {
	if len(m) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s:%d", k, m[k])
	}
	return strings.Join(parts, " ")
}
