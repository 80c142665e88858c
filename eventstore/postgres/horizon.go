package postgres

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// OpenTransaction is a transaction that holds an id, and so holds back the read horizon of the
// global log: no follower of any replica reads past the position it may still commit at.
type OpenTransaction struct {
	PID             int
	Age             time.Duration // since the transaction began
	Database, User  string
	ApplicationName string
	State           string // "active", "idle in transaction", ...
}

// HoldingTransactions lists the open transactions of the whole PostgreSQL cluster that hold a
// transaction id, oldest first: the first holds the read horizon. Transaction ids are cluster-wide,
// so a transaction of another database holds idlog's followers back too.
func (s *Store) HoldingTransactions(ctx context.Context) ([]OpenTransaction, error) {
	var rows []struct {
		PID   int     `db:"pid"`
		Age   float64 `db:"age"`
		DB    string  `db:"datname"`
		User  string  `db:"usename"`
		App   string  `db:"application_name"`
		State string  `db:"state"`
	}
	err := s.db.SelectContext(ctx, &rows, `SELECT pid, extract(epoch FROM clock_timestamp() - xact_start)::float8 AS age,
			coalesce(datname, '') AS datname, coalesce(usename, '') AS usename,
			coalesce(application_name, '') AS application_name, coalesce(state, '') AS state
		FROM pg_stat_activity
		WHERE backend_xid IS NOT NULL AND xact_start IS NOT NULL
		ORDER BY xact_start`)
	if err != nil {
		return nil, fmt.Errorf("postgres: read the open transactions: %w", err)
	}
	out := make([]OpenTransaction, len(rows))
	for i, r := range rows {
		out[i] = OpenTransaction{PID: r.PID, Age: time.Duration(r.Age * float64(time.Second)), Database: r.DB,
			User: r.User, ApplicationName: r.App, State: r.State}
	}
	return out, nil
}

// HorizonWatch reports, every Interval, the open transaction that holds back the read horizon:
// a gauge of its age, and a warning naming it (pid, age, database, user, application, state) once
// it is older than WarnAfter, so that a follower that waits (a replica frozen in a transaction,
// a forgotten psql session) is explained.
type HorizonWatch struct {
	Store     *Store
	Interval  time.Duration // default 5s
	WarnAfter time.Duration // default 10s
	Logger    *slog.Logger
	// Held, when set, receives the age in seconds of the oldest open transaction, 0 if none.
	Held prometheus.Gauge
}

// Run watches until ctx ends.
func (w HorizonWatch) Run(ctx context.Context) {
	if w.Interval <= 0 {
		w.Interval = 5 * time.Second
	}
	if w.WarnAfter <= 0 {
		w.WarnAfter = 10 * time.Second
	}
	if w.Logger == nil {
		w.Logger = slog.New(slog.DiscardHandler)
	}
	warned := map[int]time.Time{}
	t := time.NewTicker(w.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		open, err := w.Store.HoldingTransactions(ctx)
		if err != nil {
			if ctx.Err() == nil {
				w.Logger.Debug("could not read the open transactions", "error", err)
			}
			continue
		}
		age := 0.0
		if len(open) > 0 {
			o := open[0]
			age = o.Age.Seconds()
			if o.Age >= w.WarnAfter && time.Since(warned[o.PID]) >= time.Minute {
				warned[o.PID] = time.Now()
				w.Logger.Warn("an open transaction holds back every follower of the event log until it ends",
					"pid", o.PID, "age", o.Age.Round(time.Second), "database", o.Database, "user", o.User,
					"application", o.ApplicationName, "state", o.State)
			}
		}
		for pid, at := range warned {
			if time.Since(at) > 10*time.Minute {
				delete(warned, pid)
			}
		}
		if w.Held != nil {
			w.Held.Set(age)
		}
	}
}
