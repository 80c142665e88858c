package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/idlog/idlog/api"
	"github.com/idlog/idlog/internal/config"
	"github.com/idlog/idlog/migrations"
	"github.com/idlog/idlog/projections"
	"github.com/idlog/idlog/readreplica"
)

// readViews are the read models as the API queries them: the primary's views, or views that
// read IDLOG_READ_DATABASE_URL when it holds the last write (routed*). Session checks and
// commands never go through them: they read the event store on the primary.
type readViews struct {
	users interface {
		api.UserDirectory
		userByUID
	}
	activity interface {
		api.ActivityLister
		api.UserMetricsReport
	}
	labels   api.Labels
	wallet   api.Wallets
	profiles api.Profiles
	// waiter is what a write's answer waits for: the projections, then the replica.
	waiter api.PositionWaiter
}

func (m *readModels) primaryViews() readViews {
	return readViews{users: m.users, activity: m.activity, labels: m.labels, wallet: m.wallet, profiles: m.profiles, waiter: m.runtime}
}

// useReadReplica opens IDLOG_READ_DATABASE_URL, if set, and routes m's read views through it.
func (m *readModels) useReadReplica(ctx context.Context, cfg config.Config, log *slog.Logger, metrics prometheus.Registerer) error {
	if cfg.ReadDatabaseURL == "" {
		return nil
	}
	if m.dialect != migrations.Postgres {
		return fmt.Errorf("IDLOG_READ_DATABASE_URL needs the read models in PostgreSQL (IDLOG_DATABASE_URL)")
	}
	db, err := sqlx.Open("postgres", cfg.ReadDatabaseURL)
	if err != nil {
		return fmt.Errorf("IDLOG_READ_DATABASE_URL: %w", err)
	}
	// No bigger than the primary's pool; idle connections are not held for ever, so a restarted
	// standby is reached again with fresh ones.
	db.SetMaxOpenConns(m.db.Stats().MaxOpenConnections)
	db.SetConnMaxIdleTime(time.Minute)
	router, err := readreplica.New(ctx, readreplica.Options{
		Primary: m.db.DB, Replica: db.DB, MaxWait: cfg.ReadMaxWait,
		// A replica that hangs leaves the other half of the request's time to the primary.
		QueryTimeout: cfg.RequestTimeout / 2,
		Logger:       log.With("component", "read_replica"), Metrics: metrics,
	})
	if err != nil {
		_ = db.Close()
		if errors.Is(err, readreplica.ErrNotStandby) || errors.Is(err, readreplica.ErrOtherCluster) {
			return fmt.Errorf("IDLOG_READ_DATABASE_URL: %w: name a streaming replica (hot standby) of IDLOG_DATABASE_URL, or leave it empty", err)
		}
		return fmt.Errorf("IDLOG_READ_DATABASE_URL: %w", err)
	}
	m.replicaDB = db
	d := migrations.Postgres
	r := &routed{r: router}
	r.users.p, r.users.q = m.users, projections.NewUsersView(db, d)
	r.activity.p, r.activity.q = m.activity, projections.NewActivityView(db, d)
	r.labels.p, r.labels.q = m.labels, projections.NewLabelsView(db, d)
	r.wallet.p, r.wallet.q = m.wallet, projections.NewWalletView(db, d)
	r.profiles.p, r.profiles.q = m.profiles, projections.NewProfileView(db, d)
	m.reads = readViews{
		users: routedUsers{r}, activity: routedActivity{r}, labels: routedLabels{r}, wallet: routedWallet{r},
		profiles: routedProfiles{r}, waiter: replicaWaiter{projections: m.runtime, replica: router},
	}
	log.Info("read-model queries go to the read replica once it holds the last write", "read_database_url", config.RedactURL(cfg.ReadDatabaseURL), "max_wait", cfg.ReadMaxWait)
	return nil
}

// replicaWaiter holds a write's answer until the projections show it and the replica replayed it.
type replicaWaiter struct {
	projections api.PositionWaiter
	replica     *readreplica.Router
}

func (w replicaWaiter) WaitFor(ctx context.Context, position uint64) error {
	if err := w.projections.WaitFor(ctx, position); err != nil {
		return err
	}
	return w.replica.Written(ctx)
}

// pair is a view on the primary (p) and the same view on the replica (q).
type pair[V any] struct{ p, q V }

type routed struct {
	r        *readreplica.Router
	users    pair[*projections.UsersView]
	activity pair[*projections.ActivityView]
	labels   pair[*projections.LabelsView]
	wallet   pair[*projections.WalletView]
	profiles pair[*projections.ProfileView]
}

// page is a list query's answer.
type page[T any] struct {
	items []T
	total int
}

func read[V, T any](ctx context.Context, r *readreplica.Router, v pair[V], query func(context.Context, V) (T, error)) (T, error) {
	return readreplica.Read(ctx, r, v.p, v.q, query)
}

func readPage[V, T any](ctx context.Context, r *readreplica.Router, v pair[V], query func(context.Context, V) ([]T, int, error)) ([]T, int, error) {
	pg, err := readreplica.Read(ctx, r, v.p, v.q, func(ctx context.Context, v V) (page[T], error) {
		items, total, err := query(ctx, v)
		return page[T]{items, total}, err
	})
	return pg.items, pg.total, err
}

type routedUsers struct{ *routed }

func (x routedUsers) ByUID(ctx context.Context, uid string) (projections.User, error) {
	return read(ctx, x.r, x.users, func(ctx context.Context, v *projections.UsersView) (projections.User, error) {
		return v.ByUID(ctx, uid)
	})
}

func (x routedUsers) List(ctx context.Context, f projections.UserFilter) ([]projections.User, int, error) {
	return readPage(ctx, x.r, x.users, func(ctx context.Context, v *projections.UsersView) ([]projections.User, int, error) {
		return v.List(ctx, f)
	})
}

type routedActivity struct{ *routed }

func (x routedActivity) List(ctx context.Context, f projections.ActivityFilter) ([]projections.Activity, int, error) {
	return readPage(ctx, x.r, x.activity, func(ctx context.Context, v *projections.ActivityView) ([]projections.Activity, int, error) {
		return v.List(ctx, f)
	})
}

func (x routedActivity) UserMetrics(ctx context.Context, from, to time.Time) (projections.UserMetrics, error) {
	return read(ctx, x.r, x.activity, func(ctx context.Context, v *projections.ActivityView) (projections.UserMetrics, error) {
		return v.UserMetrics(ctx, from, to)
	})
}

type routedLabels struct{ *routed }

func (x routedLabels) ForUser(ctx context.Context, uid string) ([]projections.UserLabel, error) {
	return read(ctx, x.r, x.labels, func(ctx context.Context, v *projections.LabelsView) ([]projections.UserLabel, error) {
		return v.ForUser(ctx, uid)
	})
}

func (x routedLabels) Users(ctx context.Context, f projections.LabelFilter) ([]projections.User, int, error) {
	return readPage(ctx, x.r, x.labels, func(ctx context.Context, v *projections.LabelsView) ([]projections.User, int, error) {
		return v.Users(ctx, f)
	})
}

func (x routedLabels) Keys(ctx context.Context) ([]projections.LabelCount, error) {
	return read(ctx, x.r, x.labels, func(ctx context.Context, v *projections.LabelsView) ([]projections.LabelCount, error) {
		return v.Keys(ctx)
	})
}

type routedWallet struct{ *routed }

func (x routedWallet) Balances(ctx context.Context, uid string) (projections.Balances, error) {
	return read(ctx, x.r, x.wallet, func(ctx context.Context, v *projections.WalletView) (projections.Balances, error) {
		return v.Balances(ctx, uid)
	})
}

func (x routedWallet) Movements(ctx context.Context, f projections.MovementFilter) ([]projections.Movement, int, error) {
	return readPage(ctx, x.r, x.wallet, func(ctx context.Context, v *projections.WalletView) ([]projections.Movement, int, error) {
		return v.Movements(ctx, f)
	})
}

type routedProfiles struct{ *routed }

func (x routedProfiles) ByUID(ctx context.Context, uid string) (projections.Profile, error) {
	return read(ctx, x.r, x.profiles, func(ctx context.Context, v *projections.ProfileView) (projections.Profile, error) {
		return v.ByUID(ctx, uid)
	})
}
