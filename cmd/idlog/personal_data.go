package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"

	"github.com/jmoiron/sqlx"

	"github.com/idlog/idlog/auth"
	cmds "github.com/idlog/idlog/commands"
	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/eventstore/postgres"
	"github.com/idlog/idlog/eventstore/sqlite"
	"github.com/idlog/idlog/internal/config"
	"github.com/idlog/idlog/migrations"
	"github.com/idlog/idlog/personaldata"
	"github.com/idlog/idlog/projections"
)

// sealPersonalData wraps a SQL event store so that the personal data of users' events is sealed
// with their data keys (package personaldata), kept in the store's database and wrapped with the
// server's secret key. It also rewrites, once, the plain unique keys of an older store as keyed
// hashes. EventStoreDB has no SQL database for the keys: its store is returned as it is. close
// releases what the wrapper opened (not the store).
func sealPersonalData(ctx context.Context, cfg config.Config, store eventstore.Store) (sealed eventstore.Store, close func(), err error) {
	var db *sqlx.DB
	var dialect migrations.Dialect
	own := false
	switch s := store.(type) {
	case *postgres.Store:
		db, dialect = s.DB(), migrations.Postgres
	case *sqlite.Store:
		// The store's own pool is read-only; the keys need writes.
		if db, err = projections.OpenSQLite(ctx, cfg.SQLitePath()); err != nil {
			return nil, nil, err
		}
		dialect, own = migrations.SQLite, true
	default:
		return store, func() {}, nil
	}
	closeDB := func() {
		if own {
			_ = db.Close()
		}
	}
	secret, err := auth.LoadOrCreateKey(cfg.SecretKeyPath())
	if err != nil {
		closeDB()
		return nil, nil, fmt.Errorf("secret key: %w", err)
	}
	keys, err := personaldata.NewKeys(db, dialect, secret)
	if err == nil {
		var s *personaldata.Store
		if s, err = personaldata.Wrap(personaldata.Options{Store: store, Keys: keys, Registry: domain.NewEventRegistry(), Secret: secret}); err == nil {
			if err = s.HashStoredKeys(ctx, db); err == nil {
				return s, closeDB, nil
			}
		}
	}
	closeDB()
	return nil, nil, err
}

// rawStore returns the store under a personal data wrapper: the one holding the stored bytes,
// whose concrete type says which database it is in.
func rawStore(s eventstore.Store) eventstore.Store {
	if w, ok := s.(*personaldata.Store); ok {
		return w.Unwrap()
	}
	return s
}

// eraserOf is the store's personal data eraser, nil when it does not seal personal data.
func eraserOf(s eventstore.Store) cmds.PersonalDataEraser {
	if w, ok := s.(*personaldata.Store); ok {
		return w
	}
	return nil
}

// openSealedStore opens the configured event store wrapped for personal data, for one-shot
// commands that append users' events.
func openSealedStore(ctx context.Context, cfg config.Config, log *slog.Logger) (eventstore.Store, func(), error) {
	raw, err := openStore(ctx, cfg, log)
	if err != nil {
		return nil, nil, cfg.RedactError(fmt.Errorf("open %s event store: %w", cfg.EventStore(), err))
	}
	store, closeSeal, err := sealPersonalData(ctx, cfg, raw)
	if err != nil {
		_ = raw.Close()
		return nil, nil, err
	}
	return store, func() { closeSeal(); _ = raw.Close() }, nil
}

// eraseUser is `idlog users erase UID`: the operator erasing a user's personal data.
func eraseUser(ctx context.Context, env *environment, args []string) error {
	fs := flag.NewFlagSet("users erase", flag.ContinueOnError)
	cfg, err := loadConfig(fs, args, env)
	if err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(env.stderr, "Usage: idlog users erase UID [flags]")
		return errUsage
	}
	uid, err := domain.ParseUserID(fs.Arg(0))
	if err != nil {
		return err
	}
	log := newLogger(env.stderr, cfg)
	store, closeStore, err := openSealedStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer closeStore()
	keys, ok := store.(eventstore.KeyOwners)
	if !ok {
		return fmt.Errorf("the %s event store cannot find users by email (no KeyOwners)", cfg.EventStore())
	}
	streams, err := cmds.NewUserStreams(store, keys, domain.NewEventRegistry(), cmds.StreamsConfig{})
	if err != nil {
		return err
	}
	erase := cmds.NewErasePersonalDataHandler(streams, eraserOf(store))
	if _, err := erase.Handle(ctx, cmds.ErasePersonalData{Meta: cmds.Meta{ActorUID: eventstore.ActorSystem, RequestID: "cli-users-erase"}, UID: uid}); err != nil {
		return cfg.RedactError(err)
	}
	log.Info("personal data erased", "uid", uid)
	fmt.Fprintln(env.stdout, uid)
	return nil
}
