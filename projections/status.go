package projections

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/follower"
)

// The states of a projector in Status.
const (
	// StateLive: no event older than LiveLagThreshold waits for the projector.
	StateLive = "live"
	// StateCatchingUp: the projector is behind (starting, after a pause, or being slow).
	StateCatchingUp = "catching_up"
	// StateFailing: the last attempt failed; the projector waits at its checkpoint and retries.
	StateFailing = "failing"
)

// LiveLagThreshold is the lag in time under which a projector counts as live.
const LiveLagThreshold = time.Second

// Status is where one projector stands. The figures come from the database, so any process
// (`idlog projections status`) sees the same ones as the server.
type Status struct {
	Name string `json:"name"`
	// Generation is the live generation of the projector's tables; 0 before it first ran.
	Generation int64 `json:"generation"`
	// Position is the live generation's checkpoint: the last global position it holds.
	Position uint64 `json:"position"`
	// LagEvents counts the events after Position; -1 if unknown (see Options.LogInDB).
	LagEvents int64 `json:"lag_events"`
	// LagSeconds is how long the oldest event after Position has waited; 0 if none.
	LagSeconds float64 `json:"lag_seconds"`
	State      string  `json:"state"`
	// Running reports whether this process runs the projector live: with leases, only the
	// owner does; the other replicas stand by.
	Running bool `json:"running"`
	// Owner names the replica that holds the projector's lease, if leases are used.
	Owner       string     `json:"owner,omitempty"`
	LastError   string     `json:"last_error,omitempty"`
	LastErrorAt *time.Time `json:"last_error_at,omitempty"`
	// UpdatedAt is when the checkpoint last moved.
	UpdatedAt time.Time `json:"updated_at"`
	// Rebuild is the generation being rebuilt, if any.
	Rebuild *RebuildStatus `json:"rebuild,omitempty"`
}

// RebuildStatus is where a rebuild stands.
type RebuildStatus struct {
	Generation int64     `json:"generation"`
	Position   uint64    `json:"position"`
	LagEvents  int64     `json:"lag_events"`
	UpdatedAt  time.Time `json:"updated_at"`
}

type checkpointRow struct {
	Name        string         `db:"name"`
	Generation  int64          `db:"generation"`
	Position    int64          `db:"position"`
	UpdatedAt   sqlTime        `db:"updated_at"`
	LastError   sql.NullString `db:"last_error"`
	LastErrorAt sqlTime        `db:"last_error_at"`
}

type generationRow struct {
	Name     string        `db:"name"`
	Live     int64         `db:"live"`
	Building sql.NullInt64 `db:"building"`
}

// Status reports every projector of the runtime, in the order given to New.
func (r *Runtime) Status(ctx context.Context) ([]Status, error) {
	var gens []generationRow
	if err := r.o.DB.SelectContext(ctx, &gens, r.q.generations); err != nil {
		return nil, fmt.Errorf("projections: status: %w", err)
	}
	var cps []checkpointRow
	if err := r.o.DB.SelectContext(ctx, &cps, r.q.checkpoints); err != nil {
		return nil, fmt.Errorf("projections: status: %w", err)
	}
	owners := r.owners(ctx)
	out := make([]Status, 0, len(r.runners))
	for _, rn := range r.runners {
		s := Status{Name: rn.name, Owner: owners[FollowerName(rn.name)]}
		var building int64
		for _, g := range gens {
			if g.Name == rn.name {
				s.Generation, building = g.Live, g.Building.Int64
			}
		}
		for _, c := range cps {
			switch {
			case c.Name != rn.name:
			case c.Generation == s.Generation:
				s.Position, s.UpdatedAt = uint64(c.Position), c.UpdatedAt.Time
				if c.LastError.Valid {
					s.LastError = c.LastError.String
					t := c.LastErrorAt.Time
					s.LastErrorAt = &t
				}
			case c.Generation == building:
				s.Rebuild = &RebuildStatus{Generation: building, Position: uint64(c.Position), UpdatedAt: c.UpdatedAt.Time}
			}
		}
		fs := rn.follower.Status().State
		owned := fs == follower.StateRunning || fs == follower.StateFailing || fs == follower.StateStarting
		rn.mu.Lock()
		s.Running = rn.running && owned
		if s.Running && rn.loaded && rn.generation == s.Generation && rn.position > s.Position {
			// Events that were none of the projector's concern move its checkpoint in the database
			// only with its next write, or passFlush later.
			s.Position = rn.position
		}
		if s.Running {
			// This process knows better than the row, which a failing database may not have taken.
			s.LastError = rn.lastErr
			s.LastErrorAt = nil
			if rn.lastErr != "" {
				t := rn.lastErrAt.UTC()
				s.LastErrorAt = &t
			}
		}
		rn.mu.Unlock()

		var err error
		if s.LagEvents, s.LagSeconds, err = r.lag(ctx, s.Position); err != nil {
			return nil, fmt.Errorf("projections: status of %s: %w", rn.name, err)
		}
		if s.Rebuild != nil {
			if s.Rebuild.LagEvents, _, err = r.lag(ctx, s.Rebuild.Position); err != nil {
				return nil, fmt.Errorf("projections: status of %s: %w", rn.name, err)
			}
		}
		switch {
		case s.LastError != "":
			s.State = StateFailing
		case s.LagSeconds >= LiveLagThreshold.Seconds():
			s.State = StateCatchingUp
		default:
			s.State = StateLive
		}
		out = append(out, s)
	}
	return out, nil
}

// owners reads who holds each follower's lease. Without the table (a database migrated before
// 00090) nobody is named.
func (r *Runtime) owners(ctx context.Context) map[string]string {
	var rows []struct {
		Name  string `db:"name"`
		Owner string `db:"owner"`
	}
	if err := r.o.DB.SelectContext(ctx, &rows, `SELECT name, owner FROM follower_leases`); err != nil {
		return nil
	}
	m := make(map[string]string, len(rows))
	for _, row := range rows {
		m[row.Name] = row.Owner
	}
	return m
}

// lag counts the events after pos and the age of the oldest of them.
func (r *Runtime) lag(ctx context.Context, pos uint64) (events int64, seconds float64, err error) {
	if !r.o.LogInDB {
		// Only the store's contract to go by: the first event after pos gives the age; counting
		// would read the whole lag.
		for e, err := range r.o.Store.ReadAll(ctx, pos, eventstore.Filter{}) {
			if err != nil {
				return 0, 0, err
			}
			return -1, max(0, time.Since(e.RecordedAt).Seconds()), nil
		}
		return 0, 0, nil
	}
	if err := r.o.DB.GetContext(ctx, &events, r.d.rebind(`SELECT count(*) FROM events WHERE position > ?`), int64(pos)); err != nil {
		return 0, 0, err
	}
	if events == 0 {
		return 0, 0, nil
	}
	var oldest sqlTime
	err = r.o.DB.GetContext(ctx, &oldest, r.d.rebind(`SELECT recorded_at FROM events WHERE position > ? ORDER BY position LIMIT 1`), int64(pos))
	if errors.Is(err, sql.ErrNoRows) {
		return events, 0, nil
	}
	if err != nil {
		return 0, 0, err
	}
	return events, max(0, time.Since(oldest.Time).Seconds()), nil
}

// metrics are the runtime's Prometheus metrics. Lag, position and state are read from Status at
// each scrape; counters and histograms are updated as batches commit.
type metrics struct {
	events, skipped, failures *prometheus.CounterVec
	batchSeconds, visible     *prometheus.HistogramVec
}

func newUnregisteredMetrics() *metrics {
	const ns, sub = "idlog", "projection"
	return &metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "events_total",
			Help: "Events the projector's live generation has passed (applied or not its concern)."}, []string{"projector"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "unknown_events_skipped_total",
			Help: "Events of types this build does not know, skipped because the projector allows it."}, []string{"projector"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "failures_total",
			Help: "Failed attempts; the projector then waits at its checkpoint and retries."}, []string{"projector"}),
		batchSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "batch_duration_seconds",
			Help: "Time to apply and commit one batch.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}, []string{"projector"}),
		visible: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "visible_delay_seconds",
			Help: "From an event's append to its effect committed in the read model, while live.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}, []string{"projector"}),
	}
}

func newMetrics(r *Runtime, reg prometheus.Registerer) (*metrics, error) {
	m := newUnregisteredMetrics()
	for _, c := range []prometheus.Collector{m.events, m.skipped, m.failures, m.batchSeconds, m.visible, &statusCollector{r: r}} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("projections: register metrics: %w", err)
		}
	}
	return m, nil
}

// statusCollector turns Status into gauges at scrape time.
type statusCollector struct{ r *Runtime }

var (
	descPosition   = prometheus.NewDesc("idlog_projection_position", "The live generation's checkpoint (global position).", []string{"projector"}, nil)
	descLagEvents  = prometheus.NewDesc("idlog_projection_lag_events", "Events after the checkpoint; -1 if unknown.", []string{"projector"}, nil)
	descLagSeconds = prometheus.NewDesc("idlog_projection_lag_seconds", "Age of the oldest event after the checkpoint.", []string{"projector"}, nil)
	descFailing    = prometheus.NewDesc("idlog_projection_failing", "1 while the projector's last attempt failed.", []string{"projector"}, nil)
	descGeneration = prometheus.NewDesc("idlog_projection_generation", "The live generation of the projector's tables.", []string{"projector"}, nil)
)

func (c *statusCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPosition, descLagEvents, descLagSeconds, descFailing, descGeneration} {
		ch <- d
	}
}

func (c *statusCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := c.r.Status(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descLagEvents, err)
		return
	}
	for _, s := range st {
		failing := 0.0
		if s.State == StateFailing {
			failing = 1
		}
		ch <- prometheus.MustNewConstMetric(descPosition, prometheus.GaugeValue, float64(s.Position), s.Name)
		ch <- prometheus.MustNewConstMetric(descLagEvents, prometheus.GaugeValue, float64(s.LagEvents), s.Name)
		ch <- prometheus.MustNewConstMetric(descLagSeconds, prometheus.GaugeValue, s.LagSeconds, s.Name)
		ch <- prometheus.MustNewConstMetric(descFailing, prometheus.GaugeValue, failing, s.Name)
		ch <- prometheus.MustNewConstMetric(descGeneration, prometheus.GaugeValue, float64(s.Generation), s.Name)
	}
}
