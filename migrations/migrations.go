// Package migrations holds idlog's SQL schema, one folder of goose migrations per dialect, embedded
// in the binary. Versions are shared between dialects: 1-9 the event store, 10-19 the projection
// runtime, 20-49 read models, 50-59 the event bus, 60-69 the audit ledger,
// 70-79 the attempt limiter.
package migrations

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"

	"github.com/pressly/goose/v3"
)

//go:embed postgres/*.sql sqlite/*.sql
var files embed.FS

// Dialect names a SQL dialect that has a folder of migrations.
type Dialect string

// The dialects idlog ships migrations for.
const (
	Postgres Dialect = "postgres"
	SQLite   Dialect = "sqlite"
)

// Up applies every pending migration of the dialect to db.
func Up(ctx context.Context, db *sql.DB, d Dialect) error {
	p, err := provider(db, d)
	if err != nil {
		return err
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrations: %s up: %w", d, err)
	}
	return nil
}

// Version returns the highest applied migration version.
func Version(ctx context.Context, db *sql.DB, d Dialect) (int64, error) {
	p, err := provider(db, d)
	if err != nil {
		return 0, err
	}
	return p.GetDBVersion(ctx)
}

func provider(db *sql.DB, d Dialect) (*goose.Provider, error) {
	var gd goose.Dialect
	switch d {
	case Postgres:
		gd = goose.DialectPostgres
	case SQLite:
		gd = goose.DialectSQLite3
	default:
		return nil, fmt.Errorf("migrations: unknown dialect %q (want postgres or sqlite)", d)
	}
	sub, err := fs.Sub(files, string(d))
	if err != nil {
		return nil, err
	}
	// Each part of idlog numbers its migrations in its own range, so a new migration of one part can
	// be numbered below one of another part that a database already has: apply it anyway.
	p, err := goose.NewProvider(gd, db, sub, goose.WithAllowOutofOrder(true))
	if err != nil {
		return nil, fmt.Errorf("migrations: %s: %w", d, err)
	}
	return p, nil
}

// Latest returns the highest migration version the dialect ships: the version Up brings a
// database to.
func Latest(d Dialect) (int64, error) {
	names, err := fs.Glob(files, string(d)+"/*.sql")
	if err != nil || len(names) == 0 {
		return 0, fmt.Errorf("migrations: no migrations for dialect %q", d)
	}
	var latest int64
	for _, n := range names {
		v, err := goose.NumericComponent(n)
		if err != nil {
			return 0, fmt.Errorf("migrations: %s: %w", n, err)
		}
		latest = max(latest, v)
	}
	return latest, nil
}
