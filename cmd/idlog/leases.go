package main

import (
	"context"
	"log/slog"

	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/eventstore/postgres"
	"github.com/idlog/idlog/eventstore/sqlite"
	"github.com/idlog/idlog/follower"
	"github.com/idlog/idlog/internal/config"
	"github.com/idlog/idlog/lease"
	"github.com/idlog/idlog/migrations"
	"github.com/idlog/idlog/projections"
)

// openLeases returns the leases that give each follower (projectors, relay, sealer) one owner
// across the replicas sharing the store's database, and a function that closes what it opened.
// On SQLite the one process owns everything, through the same code. With EventStoreDB there is
// no shared SQL database to hold leases: nil, and each follower runs in this process.
func openLeases(ctx context.Context, cfg config.Config, store eventstore.Store, log *slog.Logger) (follower.Lease, func(), error) {
	switch s := store.(type) {
	case *postgres.Store:
		l, err := lease.New(lease.Options{DB: s.DB().DB, Dialect: migrations.Postgres, Logger: log})
		if err != nil {
			return nil, nil, err
		}
		log.Info("followers are leased across replicas", "owner", l.Owner())
		return l, func() {}, nil
	case *sqlite.Store:
		db, err := projections.OpenSQLite(ctx, cfg.SQLitePath())
		if err != nil {
			return nil, nil, err
		}
		l, err := lease.New(lease.Options{DB: db.DB, Dialect: migrations.SQLite, Logger: log, SQLiteTakeover: true})
		if err != nil {
			_ = db.Close()
			return nil, nil, err
		}
		return l, func() { _ = db.Close() }, nil
	default:
		return nil, func() {}, nil
	}
}

// sharedProgress tells standby replicas of projector commits, by PostgreSQL notifications, so
// that read-your-writes does not poll. Nil unless replicas share a PostgreSQL database.
func sharedProgress(store eventstore.Store, leases follower.Lease) func() <-chan struct{} {
	pg, ok := store.(*postgres.Store)
	if !ok || leases == nil {
		return nil
	}
	return pg.Progressed
}
