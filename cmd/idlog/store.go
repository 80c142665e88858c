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

// openStore opens the configured event store for a one-shot command. The SQL constructors migrate
// their schema.
func openStore(ctx context.Context, cfg config.Config, log *slog.Logger) (eventstore.Store, error) {
	return openStoreWith(ctx, cfg, log, postgres.SessionTimeouts{})
}

// serveTimeouts are the PostgreSQL session timeouts of the server, derived from its request
// timeout: a statement or a lock wait ends when the request's answer is due, and a transaction
// left idle by a stalled process is ended soon after. One-shot commands (imports, rebuilds) have
// no request deadline and keep the server's settings.
func serveTimeouts(cfg config.Config) postgres.SessionTimeouts {
	return postgres.SessionTimeouts{
		Statement: cfg.RequestTimeout, Lock: cfg.RequestTimeout, IdleInTransaction: 2 * cfg.RequestTimeout,
	}
}

// idlePoll is how often an idle follower reads the PostgreSQL log in case a wake-up was missed.
const idlePoll = 5 * time.Second

// openStoreWith opens the configured event store; a PostgreSQL one gets the session timeouts.
func openStoreWith(ctx context.Context, cfg config.Config, log *slog.Logger, timeouts postgres.SessionTimeouts) (eventstore.Store, error) {
	// Each case returns a nil interface on error, never a nil *Store inside a non-nil interface.
	switch cfg.EventStore() {
	case config.EventStoreDB:
		s, err := esdb.Open(ctx, esdb.Options{URL: cfg.EventStoreURL, Logger: log})
		if err != nil {
			return nil, err
		}
		return s, nil
	case config.Postgres:
		s, err := postgres.Open(ctx, postgres.Options{DSN: cfg.DatabaseURL, Timeouts: timeouts, Replicas: true,
			ProgressChannel: projections.ProgressChannel,
			// Appends of every replica wake subscribers (LISTEN/NOTIFY), so the poll is only a
			// safety net (a lost notification, a writer that does not notify), and an idle
			// follower costs one query per interval.
			PollInterval: idlePoll})
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
