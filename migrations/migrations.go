// Package migrations holds idlog's SQL schema, one folder of goose migrations per dialect, embedded
// in the binary. Versions are shared between dialects: 1-9 the event store, 10-19 the projection
// runtime, 20-49 read models, 50-59 the event bus, 60-69 the audit ledger, 70-79 the attempt
// limiter, 80-89 user snapshots, 90-99 the followers' leases and replica checks, 120-129 the audit
// Merkle tree. On PostgreSQL, Up holds a lock while it migrates.
package migrations

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"hash/fnv"
	"io/fs"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
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
	p, err := provider(ctx, db, d)
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
	p, err := provider(ctx, db, d)
	if err != nil {
		return 0, err
	}
	return p.GetDBVersion(ctx)
}

func provider(ctx context.Context, db *sql.DB, d Dialect) (*goose.Provider, error) {
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
	opts := []goose.ProviderOption{goose.WithAllowOutofOrder(true)}
	if d == Postgres {
		// Replicas started at once migrate one after the other: the first applies, the others
		// find nothing left to do. The lock is per schema, so schemas of one database do not wait
		// for each other.
		var schema string
		if err := db.QueryRowContext(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
			return nil, fmt.Errorf("migrations: read the current schema: %w", err)
		}
		h := fnv.New64a()
		h.Write([]byte("idlog migrations " + schema))
		locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(int64(h.Sum64()>>1)), lock.WithLockTimeout(1, 300))
		if err != nil {
			return nil, fmt.Errorf("migrations: %w", err)
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	p, err := goose.NewProvider(gd, db, sub, opts...)
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
