package follower

import "github.com/prometheus/client_golang/prometheus"

// collector exposes one follower's figures, labelled with its name, so that every replica's
// /metrics says which follower it owns and which it stands by for.
type collector struct {
	f                                 *Follower
	owner, position, events, failures *prometheus.Desc
}

// Collector returns the follower's metrics, for a component that registers its own collector
// (the relay) to include. Options.Metrics registers them directly.
func (f *Follower) Collector() prometheus.Collector { return newCollector(f) }

func newCollector(f *Follower) *collector {
	l := prometheus.Labels{"follower": f.o.Name}
	return &collector{
		f:        f,
		owner:    prometheus.NewDesc("idlog_follower_owner", "1 while this process owns and runs the follower, 0 while it stands by or is stopped.", nil, l),
		position: prometheus.NewDesc("idlog_follower_position", "The last durable position this process saw the follower reach.", nil, l),
		events:   prometheus.NewDesc("idlog_follower_events_total", "Events this process applied for the follower.", nil, l),
		failures: prometheus.NewDesc("idlog_follower_failures_total", "Attempts of the follower that failed in this process.", nil, l),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.owner
	ch <- c.position
	ch <- c.events
	ch <- c.failures
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.f.Status()
	owner := 0.0
	if s.State == StateRunning || s.State == StateFailing || s.State == StateStarting {
		owner = 1
	}
	ch <- prometheus.MustNewConstMetric(c.owner, prometheus.GaugeValue, owner)
	ch <- prometheus.MustNewConstMetric(c.position, prometheus.GaugeValue, float64(s.Position))
	ch <- prometheus.MustNewConstMetric(c.events, prometheus.CounterValue, float64(s.Events))
	ch <- prometheus.MustNewConstMetric(c.failures, prometheus.CounterValue, float64(s.Failures))
}
