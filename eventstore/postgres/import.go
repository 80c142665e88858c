package postgres

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/idlog/idlog/eventstore"
)

// ImportEvents writes a history as it is into the log: ids, streams, versions, types, data,
// metadata and recorded_at as given (it implements audit.Importer, which documents the
// contract). One call is one transaction, and its events get positions by the formula of
// idlog_append, (transaction id << 20) | index, so they follow every earlier batch and sort in
// the given order. The transaction locks the events table against appends (SHARE ROW EXCLUSIVE)
// so that the log's end it checks is the end it writes after.
func (s *Store) ImportEvents(ctx context.Context, after uint64, events []eventstore.Event, claims, releases [][]string) (uint64, error) {
	if s.closed.Load() {
		return 0, eventstore.ErrClosed
	}
	n := len(events)
	switch {
	case n == 0:
		return after, nil
	case n > eventstore.MaxEventsPerAppend:
		return 0, fmt.Errorf("%w: %d events in one import batch, at most %d", eventstore.ErrInvalidAppend, n, eventstore.MaxEventsPerAppend)
	case claims != nil && len(claims) != n, releases != nil && len(releases) != n:
		return 0, fmt.Errorf("%w: import of %d events with %d claim and %d release lists", eventstore.ErrInvalidAppend, n, len(claims), len(releases))
	}
	ids := make([]string, n)
	streams := make([]string, n)
	versions := make([]int64, n)
	types := make([]string, n)
	schemas := make([]int64, n)
	data := make([]string, n)
	meta := make([]string, n)
	recorded := make([]string, n)
	for i, e := range events {
		if e.StreamID == "" || e.StreamVersion < 1 || e.Type == "" || e.SchemaVersion < 1 || !json.Valid(e.Data) {
			return 0, fmt.Errorf("%w: import event %s: incomplete envelope or invalid JSON data", eventstore.ErrInvalidAppend, e.ID)
		}
		if err := e.CheckText(); err != nil {
			return 0, fmt.Errorf("import event %s: %w", e.ID, err)
		}
		m, err := json.Marshal(e.Metadata)
		if err != nil {
			return 0, fmt.Errorf("postgres: import: encode metadata: %w", err)
		}
		ids[i], streams[i], versions[i], types[i] = e.ID.String(), e.StreamID, int64(e.StreamVersion), e.Type
		schemas[i], data[i], meta[i] = int64(e.SchemaVersion), string(e.Data), string(m)
		recorded[i] = e.RecordedAt.UTC().Format("2006-01-02T15:04:05.000000Z07:00")
	}

	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return 0, s.importError(err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after commit
	// Appends take ROW EXCLUSIVE, which this mode excludes (and so does another import).
	if _, err := tx.ExecContext(ctx, `LOCK TABLE events IN SHARE ROW EXCLUSIVE MODE`); err != nil {
		return 0, s.importError(err)
	}
	var end int64
	if err := tx.GetContext(ctx, &end, `SELECT coalesce(max(position), 0) FROM events`); err != nil {
		return 0, s.importError(err)
	}
	if uint64(end) != after {
		return 0, fmt.Errorf("%w: import expected the log to end at position %d, it ends at %d", eventstore.ErrConcurrency, after, end)
	}
	var last int64
	err = tx.GetContext(ctx, &last, `WITH ins AS (
		INSERT INTO events (position, event_id, stream_id, stream_version, event_type, schema_version, data, metadata, recorded_at)
		SELECT (pg_current_xact_id()::text::bigint << 20) | (t.i - 1), t.id, t.s, t.v, t.typ, t.sv, t.d::json, t.m::jsonb, t.r
		FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::text[], $5::int[], $6::text[], $7::text[], $8::timestamptz[])
			WITH ORDINALITY AS t(id, s, v, typ, sv, d, m, r, i)
		RETURNING position)
		SELECT max(position) FROM ins`,
		pq.Array(ids), pq.Array(streams), pq.Array(versions), pq.Array(types), pq.Array(schemas),
		pq.Array(data), pq.Array(meta), pq.Array(recorded))
	if err != nil {
		return 0, s.importError(err)
	}
	// Every version above 1 needs its predecessor, here or before: versions run 1, 2, 3... with
	// no gap, as appends would have made them.
	var gapStream string
	var gapVersion int64
	err = tx.QueryRowxContext(ctx, `SELECT b.s, b.v FROM unnest($1::text[], $2::bigint[]) AS b(s, v)
		WHERE b.v > 1 AND NOT EXISTS (SELECT 1 FROM events e WHERE e.stream_id = b.s AND e.stream_version = b.v - 1)
		LIMIT 1`, pq.Array(streams), pq.Array(versions)).Scan(&gapStream, &gapVersion)
	switch {
	case err == nil:
		return 0, fmt.Errorf("%w: import: stream %q has version %d without version %d", eventstore.ErrInvalidAppend, gapStream, gapVersion, gapVersion-1)
	case !errors.Is(err, sql.ErrNoRows):
		return 0, s.importError(err)
	}
	if err := importKeys(ctx, tx, events, claims, releases); err != nil {
		return 0, s.importError(err)
	}
	if err := tx.Commit(); err != nil {
		return 0, s.importError(err)
	}
	s.appended.Notify()
	return uint64(last), nil
}

// importKeys applies a batch's releases and claims in a few statements: per key, what its
// changes in the batch leave, in order. A claim takes the key from any holder; a release frees it
// only from the releasing stream.
func importKeys(ctx context.Context, tx *sqlx.Tx, events []eventstore.Event, claims, releases [][]string) error {
	type keyState struct {
		claimed    bool     // a claim in the batch decides the key's row
		holder     string   // then: who holds it after the batch, "" nobody
		releasedBy []string // no claim yet: streams that released it, holding it before the batch
	}
	keys := map[string]*keyState{}
	state := func(k string) *keyState {
		st := keys[k]
		if st == nil {
			st = &keyState{}
			keys[k] = st
		}
		return st
	}
	for i, e := range events {
		if releases != nil {
			for _, k := range releases[i] {
				if st := state(k); !st.claimed {
					st.releasedBy = append(st.releasedBy, e.StreamID)
				} else if st.holder == e.StreamID {
					st.holder = ""
				}
			}
		}
		if claims != nil {
			for _, k := range claims[i] {
				st := state(k)
				st.claimed, st.holder = true, e.StreamID
			}
		}
	}
	if len(keys) == 0 {
		return nil
	}
	var relKeys, relStreams, freed, held, holders []string
	for k, st := range keys {
		switch {
		case !st.claimed:
			for _, s := range st.releasedBy {
				relKeys, relStreams = append(relKeys, k), append(relStreams, s)
			}
		case st.holder == "":
			freed = append(freed, k)
		default:
			held, holders = append(held, k), append(holders, st.holder)
		}
	}
	if len(relKeys) > 0 {
		if _, err := tx.ExecContext(ctx, `DELETE FROM unique_keys u USING unnest($1::text[], $2::text[]) AS d(k, s)
			WHERE u.key = d.k AND u.stream_id = d.s`, pq.Array(relKeys), pq.Array(relStreams)); err != nil {
			return fmt.Errorf("release keys: %w", err)
		}
	}
	if len(freed) > 0 {
		if _, err := tx.ExecContext(ctx, `DELETE FROM unique_keys WHERE key = ANY($1::text[])`, pq.Array(freed)); err != nil {
			return fmt.Errorf("release keys: %w", err)
		}
	}
	if len(held) > 0 {
		if _, err := tx.ExecContext(ctx, `INSERT INTO unique_keys (key, stream_id)
			SELECT * FROM unnest($1::text[], $2::text[])
			ON CONFLICT (key) DO UPDATE SET stream_id = EXCLUDED.stream_id, claimed_at = now()`,
			pq.Array(held), pq.Array(holders)); err != nil {
			return fmt.Errorf("claim keys: %w", err)
		}
	}
	return nil
}

func (s *Store) importError(err error) error {
	if s.closed.Load() {
		return eventstore.ErrClosed
	}
	var pe *pq.Error
	if errors.As(err, &pe) && pe.Code == "23505" { // unique_violation: an id or a stream version twice
		return fmt.Errorf("%w: import: %s (%s)", eventstore.ErrInvalidAppend, pe.Message, pe.Detail)
	}
	return fmt.Errorf("postgres: import: %w", err)
}
