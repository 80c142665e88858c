package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/eventstore/esdb"
	"github.com/idlog/idlog/eventstore/postgres"
	"github.com/idlog/idlog/eventstore/sqlite"
	"github.com/idlog/idlog/internal/config"
	"github.com/idlog/idlog/projections"
)

// openStore opens the configured event store. The SQL constructors migrate their schema.
func openStore(ctx context.Context, cfg config.Config, log *slog.Logger) (eventstore.Store, error) {
	// Each case returns a nil interface on error, never a nil *Store inside a non-nil interface.
	switch cfg.EventStore() {
	case config.EventStoreDB:
		s, err := esdb.Open(ctx, esdb.Options{URL: cfg.EventStoreURL, Logger: log})
		if err != nil {
			return nil, err
		}
		return s, nil
	case config.Postgres:
		s, err := postgres.Open(ctx, postgres.Options{DSN: cfg.DatabaseURL, Replicas: true, ProgressChannel: projections.ProgressChannel,
			// Appends of every replica wake subscribers (LISTEN/NOTIFY): the poll is a safety net.
			PollInterval: time.Second})
		if err != nil {
			return nil, err
		}
		return s, nil
	default:
		s, err := sqlite.Open(ctx, sqlite.Options{Path: cfg.SQLitePath()})
		if err != nil {
			return nil, err
		}
		return s, nil
	}
}
