package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/lib/pq"

	"github.com/idlog/idlog/eventstore"
)

// AppendBatch makes many appends, to different streams, in one transaction: all are stored, or
// none (the first failure is returned, mapped as Append maps it, and nothing is written). Each
// append is checked as Append checks it (expected version, unique keys); the events of the batch
// get increasing positions in the order given. It saves the commit of each append for writers of
// many new streams at once (idlog users import). Unlike Append it does not answer a retried
// append with its original result: on an error, the caller appends one by one.
func (s *Store) AppendBatch(ctx context.Context, batch []eventstore.Append) ([]eventstore.AppendResult, error) {
	if s.closed.Load() {
		return nil, eventstore.ErrClosed
	}
	total := 0
	for _, a := range batch {
		if err := a.Validate(); err != nil {
			return nil, err
		}
		total += len(a.Events)
	}
	if total > 1<<20 {
		return nil, fmt.Errorf("%w: %d events in one batch, at most %d", eventstore.ErrInvalidAppend, total, 1<<20)
	}
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return nil, s.importError(err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after commit
	const q = `SELECT first_version, last_version, first_position, last_position, recorded_at
		FROM idlog_append_at($1, $2, $3, $4::uuid[], $5, $6::int[], $7, $8, $9, $10)`
	stmt, err := tx.PreparexContext(ctx, q)
	if err != nil {
		return nil, s.importError(err)
	}
	defer stmt.Close()
	results := make([]eventstore.AppendResult, len(batch))
	offset := 0
	for i, a := range batch {
		events, err := eventstore.WithIDs(a.Events)
		if err != nil {
			return nil, err
		}
		n := len(events)
		ids, types, versions := make([]string, n), make([]string, n), make([]int64, n)
		data, meta := make([]string, n), make([]string, n)
		for j, e := range events {
			ids[j], types[j], versions[j], data[j] = e.ID.String(), e.Type, int64(e.SchemaVersion), string(e.Data)
			m, err := json.Marshal(e.Metadata)
			if err != nil {
				return nil, fmt.Errorf("postgres: encode metadata: %w", err)
			}
			meta[j] = string(m)
		}
		claims := slices.Clone(a.Claim)
		slices.Sort(claims) // the order Append claims in: no deadlock with it
		if a.DataKey != nil {
			if err := insertDataKey(ctx, tx, a); err != nil {
				return nil, err
			}
		}
		var r appendRow
		if err := stmt.QueryRowxContext(ctx, offset, a.Stream, int64(a.Expected), pq.Array(ids), pq.Array(types), pq.Array(versions),
			pq.Array(data), pq.Array(meta), pq.Array(claims), pq.Array(a.Release)).StructScan(&r); err != nil {
			return nil, s.appendError(a, err)
		}
		results[i] = r.result()
		offset += n
	}
	if err := tx.Commit(); err != nil {
		return nil, s.importError(err)
	}
	if len(results) > 0 {
		s.committed(results[len(results)-1].LastPosition)
	}
	return results, nil
}

// KeyOwners returns the streams holding those of keys that are claimed, in one query: KeyOwner
// for many keys (idlog users import checks a whole file's emails before it writes).
func (s *Store) KeyOwners(ctx context.Context, keys []string) (map[string]string, error) {
	if s.closed.Load() {
		return nil, eventstore.ErrClosed
	}
	rows, err := s.db.QueryContext(ctx, `SELECT key, stream_id FROM unique_keys WHERE key = ANY($1::text[])`, pq.Array(keys))
	if err != nil {
		return nil, fmt.Errorf("postgres: key owners: %w", err)
	}
	defer rows.Close()
	owners := make(map[string]string)
	for rows.Next() {
		var k, stream string
		if err := rows.Scan(&k, &stream); err != nil {
			return nil, fmt.Errorf("postgres: key owners: %w", err)
		}
		owners[k] = stream
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: key owners: %w", err)
	}
	return owners, nil
}
