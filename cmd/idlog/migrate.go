package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"net/url"
	"os"
	"path/filepath"

	_ "github.com/lib/pq"  // database/sql driver "postgres"
	_ "modernc.org/sqlite" // database/sql driver "sqlite"

	"github.com/idlog/idlog/internal/config"
	"github.com/idlog/idlog/migrations"
)

var migrateCommand = command{name: "migrate", summary: "apply the SQL schema migrations and print the schema version", run: migrate}

// migrate applies the migrations without starting anything else, for deployments that migrate
// in a step of their own (serve migrates too when it opens the store).
func migrate(ctx context.Context, env *environment, args []string) error {
	cfg, err := loadConfig(flag.NewFlagSet("migrate", flag.ContinueOnError), args, env)
	if err != nil {
		return err
	}
	var (
		dialect migrations.Dialect
		driver  string
		dsn     string
		where   string
	)
	switch cfg.EventStore() {
	case config.EventStoreDB:
		fmt.Fprintln(env.stdout, "nothing to migrate: the event store is EventStoreDB, which has no schema")
		return nil
	case config.Postgres:
		dialect, driver, dsn, where = migrations.Postgres, "postgres", cfg.DatabaseURL, config.RedactURL(cfg.DatabaseURL)
	default:
		path, err := filepath.Abs(cfg.SQLitePath())
		if err != nil {
			return err
		}
		// 0700 as the store makes it: the database holds personal data.
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return err
		}
		dialect, driver, dsn, where = migrations.SQLite, "sqlite", sqliteDSN(path), path
	}

	db, err := sql.Open(driver, dsn)
	if err != nil {
		return cfg.RedactError(fmt.Errorf("open %s: %w", where, err))
	}
	defer db.Close()
	if err := migrations.Up(ctx, db, dialect); err != nil {
		return cfg.RedactError(fmt.Errorf("migrate %s: %w", where, err))
	}
	v, err := migrations.Version(ctx, db, dialect)
	if err != nil {
		return cfg.RedactError(fmt.Errorf("read schema version of %s: %w", where, err))
	}
	fmt.Fprintf(env.stdout, "%s schema at version %d: %s\n", dialect, v, where)
	return nil
}

// sqliteDSN opens path as the event store does: waiting for a running server's writes rather
// than failing at once, and in WAL mode, which the file keeps.
func sqliteDSN(path string) string {
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(path)}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(5000)")
	q.Add("_pragma", "journal_mode(WAL)")
	u.RawQuery = q.Encode()
	return u.String()
}
