package postgres

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"iter"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/idlog/idlog/eventstore"
)

var _ eventstore.Scanner = (*Store)(nil)

// scanPage is how many events one query of ScanAll reads: enough that round trips and the
// per-query work are lost in the rows, few enough that a page in memory stays a few MiB.
const scanPage = 10000

// scanPageQuery reads a range of positions that is known to be final (see ScanAll), so the read
// horizon need not be asked for on every page, and it is a plain query rather than
// idlog_global_page: a function with settings is not inlined, so its whole result is built on
// the server before the first row is sent, while this one streams. The planner settings of
// idlog_global_page are set on the page's transaction instead.
const scanPageQuery = `SELECT ` + scanColumns + ` FROM events WHERE position > $1 AND position <= $2 ORDER BY position LIMIT $3`

// scanColumns are eventColumns as ScanAll reads them, for less work on both sides: the event
// id's 16 bytes (uuid_send) and recorded_at as microseconds since 2000-01-01 UTC
// (timestamptz_send, far cheaper for the server than writing the time out, and for the client
// than parsing it) come as bytea, which lib/pq hands over as the bytes of the message, in the
// binary format of a statement with parameters; the data as the json it is rather than cast to
// text, which lib/pq would copy into a string; a metadata field that is absent as NULL rather
// than coalesced to ”. scanRow makes of them the event that eventColumns' row makes: the
// conformance suite's ScanAll tests compare every field with ReadAll's.
const scanColumns = `position, uuid_send(event_id), stream_id, stream_version, event_type, schema_version, data,
	timestamptz_send(recorded_at), metadata->>'actor_uid', metadata->>'actor_role', metadata->>'ip',
	metadata->>'user_agent', metadata->>'correlation_id', metadata->>'causation_id', metadata->>'idempotency_key'`

// scanReaders is how many pages ScanAll reads at once, each on its own connection: the server
// builds the rows of one page while the client decodes another's.
const scanReaders = 3

// scanBoundsQuery finds where ScanAll's pages end: every scanPage-th position of the range, read
// from the primary key's index alone, so the pages can be read at once and handed out in order.
const scanBoundsQuery = `SELECT position FROM (SELECT position, row_number() OVER (ORDER BY position) AS n
	FROM events WHERE position > $1 AND position <= $2) AS p WHERE n % $3 = 0 ORDER BY position`

// ScanAll implements eventstore.Scanner. It waits, as ReadAll does, until every transaction that
// may still write below the newest position is over, then reads up to that position in pages of
// scanPage events: the rows there can no longer change, so the page bounds can be found first,
// and scanReaders pages read at once, each in one query, and yielded in order.
func (s *Store) ScanAll(ctx context.Context, after uint64) iter.Seq2[eventstore.Event, error] {
	if s.closed.Load() {
		return eventstore.Failed(eventstore.ErrClosed)
	}
	var target int64
	if err := s.db.GetContext(ctx, &target, `SELECT coalesce(max(position), 0) FROM events`); err != nil {
		return eventstore.Failed(s.readError(ctx, err))
	}
	return func(yield func(eventstore.Event, error) bool) {
		if target <= int64(after) {
			return
		}
		if err := s.awaitHorizon(ctx, target); err != nil {
			yield(eventstore.Event{}, s.readError(ctx, err))
			return
		}
		var bounds []int64
		if err := s.db.SelectContext(ctx, &bounds, scanBoundsQuery, int64(after), target, scanPage); err != nil {
			yield(eventstore.Event{}, s.readError(ctx, err))
			return
		}
		if n := len(bounds); n == 0 || bounds[n-1] < target {
			bounds = append(bounds, target)
		}
		for page, err := range s.scanPages(ctx, int64(after), bounds) {
			if err != nil {
				yield(eventstore.Event{}, s.readError(ctx, err))
				return
			}
			for i := range page {
				if !yield(page[i], nil) {
					return
				}
			}
		}
	}
}

// scanPages reads the pages (bounds[i-1], bounds[i]] (the first after `after`), up to
// scanReaders of them at once, and yields them in order.
func (s *Store) scanPages(ctx context.Context, after int64, bounds []int64) iter.Seq2[[]eventstore.Event, error] {
	return func(yield func([]eventstore.Event, error) bool) {
		ctx, cancel := context.WithCancel(ctx)
		type result struct {
			rows []eventstore.Event
			err  error
		}
		pages := make([]chan result, len(bounds))
		for i := range pages {
			pages[i] = make(chan result, 1)
		}
		// A reader may only start page i once page i-scanReaders was taken, so at most
		// scanReaders pages wait in memory besides the one being yielded.
		slots := make(chan struct{}, scanReaders)
		var next atomic.Int64
		var wg sync.WaitGroup
		for range min(scanReaders, len(bounds)) {
			wg.Go(func() {
				for {
					select {
					case slots <- struct{}{}:
					case <-ctx.Done():
						return
					}
					i := int(next.Add(1) - 1)
					if i >= len(bounds) {
						return
					}
					if s.closed.Load() {
						pages[i] <- result{err: eventstore.ErrClosed}
						return
					}
					from := after
					if i > 0 {
						from = bounds[i-1]
					}
					rows, err := s.scanPage(ctx, from, bounds[i], make([]eventstore.Event, 0, scanPage))
					pages[i] <- result{rows, err}
					if err != nil {
						return
					}
				}
			})
		}
		defer func() {
			cancel()
			wg.Wait()
		}()
		for i := range pages {
			var r result
			select {
			case r = <-pages[i]:
			case <-ctx.Done():
				yield(nil, ctx.Err())
				return
			}
			<-slots
			if !yield(r.rows, r.err) || r.err != nil {
				return
			}
		}
	}
}

// awaitHorizon returns once no transaction that may still write at or below position target is
// running: the oldest running transaction's id, shifted as positions are, is above it. A position
// beyond every transaction id handed out so far is not waited for: only an edit of the table can
// put an event there, no transaction will ever end above it, and a verify must report it rather
// than wait for ever.
func (s *Store) awaitHorizon(ctx context.Context, target int64) error {
	const q = `SELECT pg_snapshot_xmin(c)::text::bigint << 20, pg_snapshot_xmax(c)::text::bigint << 20 FROM pg_current_snapshot() AS c`
	pause := time.Millisecond
	for first := true; ; first = false {
		var horizon, next int64
		if err := s.db.QueryRowContext(ctx, q).Scan(&horizon, &next); err != nil {
			return err
		}
		if first {
			target = min(target, next-1)
		}
		if horizon > target {
			return nil
		}
		t := time.NewTimer(pause)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-s.done:
			t.Stop()
			return eventstore.ErrClosed
		}
		pause = min(2*pause, s.opts.PollInterval, heldBackPause)
	}
}

// scanPage reads the events in (after, upTo], at most scanPage of them, appended to buf.
func (s *Store) scanPage(ctx context.Context, after, upTo int64, buf []eventstore.Event) ([]eventstore.Event, error) {
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return buf, err
	}
	defer tx.Rollback() //nolint:errcheck // read-only: nothing to keep
	// What idlog_global_page's settings do: walk events_pkey in order even before the table has
	// statistics, rather than sort everything after the position for each page.
	if _, err := tx.ExecContext(ctx, `SET LOCAL enable_sort = off; SET LOCAL enable_bitmapscan = off`); err != nil {
		return buf, err
	}
	rows, err := tx.QueryContext(ctx, scanPageQuery, after, upTo, scanPage)
	if err != nil {
		return buf, err
	}
	defer rows.Close()
	var r scanRow
	dest := r.dest()
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return buf, err
		}
		e, err := r.event()
		if err != nil {
			return buf, err
		}
		buf = append(buf, e)
	}
	return buf, rows.Err()
}

// scanRow is one row of scanColumns, scanned where database/sql converts nothing: integers and
// strings into an any as lib/pq made them, bytes into RawBytes reused from row to row.
type scanRow struct {
	position, streamVersion, schemaVersion any
	streamID, eventType                    string
	meta                                   [7]any
	id, data, recordedAt                   sql.RawBytes
}

func (r *scanRow) dest() []any {
	d := []any{&r.position, &r.id, &r.streamID, &r.streamVersion, &r.eventType, &r.schemaVersion, &r.data, &r.recordedAt}
	for i := range r.meta {
		d = append(d, &r.meta[i])
	}
	return d
}

// pgEpochMicros is 2000-01-01 00:00:00 UTC, where timestamptz_send counts from, in Unix
// microseconds.
const pgEpochMicros = 946684800_000000

// event builds the event from the row.
func (r *scanRow) event() (eventstore.Event, error) {
	var e eventstore.Event
	pos, ok1 := r.position.(int64)
	ver, ok2 := r.streamVersion.(int64)
	schema, ok3 := r.schemaVersion.(int64)
	if !ok1 || !ok2 || !ok3 {
		return e, fmt.Errorf("postgres: scan: integer columns came as %T, %T, %T", r.position, r.streamVersion, r.schemaVersion)
	}
	if len(r.id) != len(e.ID) {
		return e, fmt.Errorf("postgres: scan: event id of %d bytes at position %d", len(r.id), pos)
	}
	if len(r.recordedAt) != 8 {
		return e, fmt.Errorf("postgres: scan: recorded_at of %d bytes at position %d", len(r.recordedAt), pos)
	}
	micros := int64(binary.BigEndian.Uint64(r.recordedAt))
	if micros == math.MaxInt64 || micros == math.MinInt64 {
		return e, fmt.Errorf("postgres: scan: recorded_at is infinite at position %d", pos)
	}
	m := &e.Metadata
	for i, f := range [...]*string{&m.ActorUID, &m.ActorRole, &m.IP, &m.UserAgent, &m.CorrelationID, &m.CausationID, &m.IdempotencyKey} {
		switch v := r.meta[i].(type) {
		case nil: // absent, or JSON null: what coalesce(..., '') makes ''
		case string:
			*f = v
		default:
			return e, fmt.Errorf("postgres: scan: metadata field %d came as %T at position %d", i, v, pos)
		}
	}
	copy(e.ID[:], r.id)
	e.StreamID, e.Type = r.streamID, r.eventType
	e.StreamVersion, e.GlobalPosition, e.SchemaVersion = uint64(ver), uint64(pos), int(schema)
	e.Data = json.RawMessage(bytes.Clone(r.data))
	e.RecordedAt = time.UnixMicro(micros + pgEpochMicros).UTC()
	return e, nil
}
