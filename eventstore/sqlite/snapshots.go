package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/idlog/idlog/eventstore"
)

var _ eventstore.Snapshots = (*Store)(nil)

// LoadSnapshot implements eventstore.Snapshots.
func (s *Store) LoadSnapshot(ctx context.Context, stream string) (eventstore.Snapshot, bool, error) {
	if s.isClosed() {
		return eventstore.Snapshot{}, false, errClosed("load snapshot")
	}
	var (
		version int64
		snap    eventstore.Snapshot
	)
	err := s.rdb.QueryRowContext(ctx, "SELECT version, schema_version, data FROM snapshots WHERE stream_id = ?", stream).
		Scan(&version, &snap.Schema, &snap.Data)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return eventstore.Snapshot{}, false, nil
	case err != nil:
		return eventstore.Snapshot{}, false, s.readErr(ctx, "load snapshot of "+stream, err)
	}
	snap.Version = uint64(version)
	return snap, true, nil
}

// saveSnapshot replaces the snapshot of a stream. It runs rarely (once per many events), so it is
// not prepared with the writer's statements.
const saveSnapshot = `INSERT INTO snapshots (stream_id, version, schema_version, data, saved_at) VALUES (?, ?, ?, ?, ?)
	ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version, schema_version = excluded.schema_version,
		data = excluded.data, saved_at = excluded.saved_at`

// SaveSnapshot implements eventstore.Snapshots. It goes through the writer like an append.
func (s *Store) SaveSnapshot(ctx context.Context, stream string, snap eventstore.Snapshot) error {
	if snap.Version == 0 || snap.Version > math.MaxInt64 {
		return fmt.Errorf("eventstore/sqlite: save snapshot of %q: version %d out of range", stream, snap.Version)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	r := &writeRequest{
		ctx:  ctx,
		done: make(chan error, 1),
		apply: func(w *writer) error {
			_, err := w.conn.ExecContext(context.Background(), saveSnapshot,
				stream, int64(snap.Version), snap.Schema, snap.Data, time.Now().UnixMicro())
			if err != nil {
				return fmt.Errorf("eventstore/sqlite: save snapshot of %q: %w", stream, err)
			}
			return nil
		},
	}
	return s.submit(r, "save snapshot")
}
