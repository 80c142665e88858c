package postgres

import (
	"context"
	"database/sql"
	"iter"
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

// ScanAll implements eventstore.Scanner. It waits, as ReadAll does, until every transaction that
// may still write below the newest position is over, then reads up to that position in pages of
// scanPage events: the rows there can no longer change, so no page is read twice.
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
		page := make([]eventRow, 0, scanPage)
		for pos := int64(after); pos < target; {
			if s.closed.Load() {
				yield(eventstore.Event{}, eventstore.ErrClosed)
				return
			}
			var err error
			if page, err = s.scanPage(ctx, pos, target, page[:0]); err != nil {
				yield(eventstore.Event{}, s.readError(ctx, err))
				return
			}
			for i := range page {
				if !yield(page[i].event(), nil) {
					return
				}
			}
			if len(page) < scanPage {
				return
			}
			pos = page[len(page)-1].Position
			clear(page) // the consumer's copies are then the only references to the events' data
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
func (s *Store) scanPage(ctx context.Context, after, upTo int64, buf []eventRow) ([]eventRow, error) {
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
	for rows.Next() {
		buf = append(buf, eventRow{})
		if err := buf[len(buf)-1].scan(rows); err != nil {
			return buf, err
		}
	}
	return buf, rows.Err()
}
