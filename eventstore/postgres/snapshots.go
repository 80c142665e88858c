package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"

	"github.com/idlog/idlog/eventstore"
)

var _ eventstore.Snapshots = (*Store)(nil)

// LoadSnapshot implements eventstore.Snapshots.
func (s *Store) LoadSnapshot(ctx context.Context, stream string) (eventstore.Snapshot, bool, error) {
	if s.closed.Load() {
		return eventstore.Snapshot{}, false, eventstore.ErrClosed
	}
	var (
		version int64
		snap    eventstore.Snapshot
	)
	err := s.db.QueryRowContext(ctx, `SELECT version, schema_version, data FROM snapshots WHERE stream_id = $1`, stream).
		Scan(&version, &snap.Schema, &snap.Data)
	if errors.Is(err, sql.ErrNoRows) {
		return eventstore.Snapshot{}, false, nil
	}
	if err != nil {
		return eventstore.Snapshot{}, false, fmt.Errorf("postgres: load snapshot of %q: %w", stream, err)
	}
	snap.Version = uint64(version)
	return snap, true, nil
}

// SaveSnapshot implements eventstore.Snapshots.
func (s *Store) SaveSnapshot(ctx context.Context, stream string, snap eventstore.Snapshot) error {
	if s.closed.Load() {
		return eventstore.ErrClosed
	}
	if snap.Version == 0 || snap.Version > math.MaxInt64 {
		return fmt.Errorf("postgres: save snapshot of %q: version %d out of range", stream, snap.Version)
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO snapshots (stream_id, version, schema_version, data) VALUES ($1, $2, $3, $4)
		ON CONFLICT (stream_id) DO UPDATE SET version = EXCLUDED.version, schema_version = EXCLUDED.schema_version,
			data = EXCLUDED.data, saved_at = now()`,
		stream, int64(snap.Version), snap.Schema, snap.Data)
	if err != nil {
		return fmt.Errorf("postgres: save snapshot of %q: %w", stream, err)
	}
	return nil
}
