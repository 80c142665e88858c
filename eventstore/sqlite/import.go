package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/idlog/idlog/eventstore"
)

// importClaimSQL claims a key for an imported event: the log's order is the truth, so a claim
// takes the key from whoever held it.
const importClaimSQL = `INSERT INTO unique_keys (key, stream_id, claimed_at) VALUES (?, ?, ?)
	ON CONFLICT (key) DO UPDATE SET stream_id = excluded.stream_id, claimed_at = excluded.claimed_at`

// ImportEvents writes a history as it is into the log: ids, streams, versions, types, data,
// metadata and recorded_at as given (it implements audit.Importer, which documents the
// contract). The batch goes through the writer like an append, in one savepoint, so its events
// get consecutive positions in the given order.
func (s *Store) ImportEvents(ctx context.Context, after uint64, events []eventstore.Event, claims, releases [][]string) (uint64, error) {
	n := len(events)
	switch {
	case n == 0:
		return after, nil
	case n > eventstore.MaxEventsPerAppend:
		return 0, fmt.Errorf("%w: %d events in one import batch, at most %d", eventstore.ErrInvalidAppend, n, eventstore.MaxEventsPerAppend)
	case claims != nil && len(claims) != n, releases != nil && len(releases) != n:
		return 0, fmt.Errorf("%w: import of %d events with %d claim and %d release lists", eventstore.ErrInvalidAppend, n, len(claims), len(releases))
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	rows := make([]newRow, n)
	for i, e := range events {
		if e.StreamID == "" || e.StreamVersion < 1 || e.Type == "" || e.SchemaVersion < 1 || !json.Valid(e.Data) {
			return 0, fmt.Errorf("%w: import event %s: incomplete envelope or invalid JSON data", eventstore.ErrInvalidAppend, e.ID)
		}
		if err := e.CheckText(); err != nil {
			return 0, fmt.Errorf("import event %s: %w", e.ID, err)
		}
		md, err := json.Marshal(e.Metadata)
		if err != nil {
			return 0, fmt.Errorf("%w: import event %s metadata: %v", eventstore.ErrInvalidAppend, e.ID, err)
		}
		rows[i] = newRow{id: e.ID.String(), typ: e.Type, schema: e.SchemaVersion, data: string(e.Data), metadata: string(md)}
	}
	var last uint64
	r := &writeRequest{
		ctx:    ctx,
		events: n,
		done:   make(chan error, 1),
		apply: func(w *writer) error {
			var err error
			last, err = w.importEvents(after, events, rows, claims, releases)
			return err
		},
	}
	if err := s.submit(r, "import"); err != nil {
		return 0, err
	}
	return last, nil
}

// importEvents writes an import batch inside the current transaction.
func (w *writer) importEvents(after uint64, events []eventstore.Event, rows []newRow, claims, releases [][]string) (uint64, error) {
	ctx := context.Background()
	var end int64
	if err := w.conn.QueryRowContext(ctx, "SELECT coalesce(max(position), 0) FROM events").Scan(&end); err != nil {
		return 0, fmt.Errorf("eventstore/sqlite: import: read the log's end: %w", err)
	}
	if uint64(end) != after {
		return 0, fmt.Errorf("%w: import expected the log to end at position %d, it ends at %d", eventstore.ErrConcurrency, after, end)
	}
	var claim *sql.Stmt
	defer func() {
		if claim != nil {
			_ = claim.Close()
		}
	}()
	var last int64
	for i, e := range events {
		var cur int64
		switch err := w.streamVer.QueryRowContext(ctx, e.StreamID).Scan(&cur); {
		case errors.Is(err, sql.ErrNoRows):
			cur = 0
		case err != nil:
			return 0, fmt.Errorf("eventstore/sqlite: import: read version of %q: %w", e.StreamID, err)
		}
		if e.StreamVersion != uint64(cur)+1 {
			return 0, fmt.Errorf("%w: import: event %s is version %d of stream %q, which is at version %d", eventstore.ErrInvalidAppend, e.ID, e.StreamVersion, e.StreamID, cur)
		}
		micros := e.RecordedAt.UnixMicro()
		row := rows[i]
		res, err := w.insertEvent.ExecContext(ctx, row.id, e.StreamID, int64(e.StreamVersion), row.typ, row.schema, row.data, row.metadata, micros)
		if err != nil {
			if _, dup, _ := w.lookup(ctx, row.id); dup {
				return 0, fmt.Errorf("%w: import: event %s is already stored", eventstore.ErrInvalidAppend, row.id)
			}
			return 0, fmt.Errorf("eventstore/sqlite: import: insert event %s: %w", row.id, err)
		}
		if last, err = res.LastInsertId(); err != nil {
			return 0, fmt.Errorf("eventstore/sqlite: import: position of event %s: %w", row.id, err)
		}
		if _, err := w.upsertStream.ExecContext(ctx, e.StreamID, int64(e.StreamVersion), nil); err != nil {
			return 0, fmt.Errorf("eventstore/sqlite: import: update version of %q: %w", e.StreamID, err)
		}
		if releases != nil {
			for _, k := range releases[i] {
				if _, err := w.releaseKey.ExecContext(ctx, k, e.StreamID); err != nil {
					return 0, fmt.Errorf("eventstore/sqlite: import: release key %q: %w", k, err)
				}
			}
		}
		if claims != nil && len(claims[i]) > 0 {
			if claim == nil {
				if claim, err = w.conn.PrepareContext(ctx, importClaimSQL); err != nil {
					return 0, fmt.Errorf("eventstore/sqlite: import: %w", err)
				}
			}
			for _, k := range claims[i] {
				if _, err := claim.ExecContext(ctx, k, e.StreamID, micros); err != nil {
					return 0, fmt.Errorf("eventstore/sqlite: import: claim key %q: %w", k, err)
				}
			}
		}
	}
	return uint64(last), nil
}
