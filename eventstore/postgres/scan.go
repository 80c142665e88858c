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
const scanPageQuery = `SELECT ` + eventColumns + ` FROM events WHERE position > $1 AND position <= $2 ORDER BY position LIMIT $3`

// scanReaders is how many ranges ScanAll reads at once, each on its own connection: the server
// builds the rows of one page while the client decodes another's.
const scanReaders = 3

// ScanAll implements eventstore.Scanner. It waits, as ReadAll does, until every transaction that
// may still write below the newest position is over, then reads up to that position: the rows
// there can no longer change, so the positions can be cut into ranges that are read at once,
// scanReaders of them, each on its own connection, and yielded in order. The ranges are cut by
// position, not by count: counting rows to find where every scanPage-th one is walks the whole
// primary key and visits the table for each row (on a table not vacuumed since it was filled,
// every one), which took a third of a verify's time before its first page was read. The first
// page is read alone, and how wide in positions it was is the width of the next range; each
// range read corrects the width towards scanPage events (scanRanges).
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
		first, err := s.scanPage(ctx, int64(after), target, nil)
		if err != nil {
			yield(eventstore.Event{}, s.readError(ctx, err))
			return
		}
		for i := range first {
			if !yield(first[i], nil) {
				return
			}
		}
		if len(first) < scanPage {
			return
		}
		from := int64(first[len(first)-1].GlobalPosition)
		width := from - int64(first[0].GlobalPosition) + 1
		for page, err := range s.scanRanges(ctx, from, target, width) {
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

// scanRange is a range of positions (lo, hi] that one reader reads, in pages of at most scanPage
// events, into out, which it closes at the end.
type scanRange struct {
	lo, hi int64
	out    chan scanChunk
}

type scanChunk struct {
	events []eventstore.Event
	err    error
}

// scanRanges reads the positions (from, target] in ranges, up to scanReaders of them at once,
// and yields their pages in order. A range starts where the last one handed out ends, width
// positions wide; a reader that has read a range sets the width to what would have held
// scanPage events there (at most four times the last width, where events were few). A range
// holding more events than a page is read page after page by its reader, so pages stay
// scanPage events whatever the width; ranges that hold fewer only make more queries. Memory
// stays bounded: a reader keeps at most one page waiting in its range's channel and one in hand,
// and at most scanReaders ranges wait for the consumer beside the one it takes pages from.
func (s *Store) scanRanges(ctx context.Context, from, target, width int64) iter.Seq2[[]eventstore.Event, error] {
	return func(yield func([]eventstore.Event, error) bool) {
		ctx, cancel := context.WithCancel(ctx)
		order := make(chan *scanRange, scanReaders)
		var mu sync.Mutex
		next := from
		// take hands out the next range and queues it for the consumer, under mu so that ranges
		// queue in the order of their positions; nil when there is none left.
		take := func() *scanRange {
			mu.Lock()
			defer mu.Unlock()
			if next >= target || ctx.Err() != nil {
				return nil
			}
			r := &scanRange{lo: next, hi: target, out: make(chan scanChunk, 1)}
			if width < target-next {
				r.hi = next + width
			}
			select {
			case order <- r:
			case <-ctx.Done():
				return nil
			}
			next = r.hi
			return r
		}
		// learn sets the width from a range of w positions that held n events.
		learn := func(w int64, n int) {
			mu.Lock()
			defer mu.Unlock()
			f := float64(w) * min(float64(scanPage)/float64(max(n, 1)), 4)
			width = max(1, int64(min(f, 1<<62)))
		}
		var wg sync.WaitGroup
		for range scanReaders {
			wg.Go(func() {
				for r := take(); r != nil; r = take() {
					n, ok := s.readRange(ctx, r)
					if !ok {
						return
					}
					learn(r.hi-r.lo, n)
				}
			})
		}
		go func() {
			wg.Wait()
			close(order)
		}()
		defer func() {
			cancel()
			for range order { //nolint:revive // drain, so that the readers can end
			}
		}()
		for r := range order {
			for c := range r.out {
				if !yield(c.events, c.err) || c.err != nil {
					return
				}
			}
			// A reader stopped by the context closes its range unfinished: never go on to the
			// next range past a hole.
			if err := ctx.Err(); err != nil {
				yield(nil, err)
				return
			}
		}
	}
}

// readRange reads the range r into r.out, page after page, and closes it. It returns how many
// events the range held, and false when it failed (the error went to r.out) or was stopped.
func (s *Store) readRange(ctx context.Context, r *scanRange) (int, bool) {
	defer close(r.out)
	send := func(c scanChunk) bool {
		select {
		case r.out <- c:
			return c.err == nil
		case <-ctx.Done():
			return false
		}
	}
	if s.closed.Load() {
		send(scanChunk{err: eventstore.ErrClosed})
		return 0, false
	}
	n := 0
	for after := r.lo; ; {
		page, err := s.scanPage(ctx, after, r.hi, make([]eventstore.Event, 0, scanPage))
		if err != nil {
			send(scanChunk{err: err})
			return n, false
		}
		n += len(page)
		if len(page) > 0 && !send(scanChunk{events: page}) {
			return n, false
		}
		if len(page) < scanPage {
			return n, true
		}
		after = int64(page[len(page)-1].GlobalPosition)
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
	return appendScanned(buf, rows, err)
}

// appendScanned appends the events of every row of a read of eventColumns to buf, and closes
// rows; err is the query's, returned as it is.
func appendScanned(buf []eventstore.Event, rows *sql.Rows, err error) ([]eventstore.Event, error) {
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

// scanRow is one row of eventColumns, scanned where database/sql converts nothing: integers and
// the metadata fields (a string or NULL) into an any as lib/pq made them, the stream and type
// into strings as lib/pq made them, bytes into RawBytes reused from row to row.
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
