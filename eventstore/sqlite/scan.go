package sqlite

import (
	"context"
	"iter"

	"github.com/idlog/idlog/eventstore"
)

var _ eventstore.Scanner = (*Store)(nil)

// scanPageSize is how many rows one query of ScanAll reads: ReadAll's pages are small so that a
// follower's slow consumer holds no snapshot for long; a scan is read as fast as it can be, and
// fewer, larger pages spend less on starting queries and seeking the next position.
const scanPageSize = 10000

// ScanAll implements eventstore.Scanner: ReadAll with larger pages, each read whole and its query
// closed before its events are yielded.
func (s *Store) ScanAll(ctx context.Context, after uint64) iter.Seq2[eventstore.Event, error] {
	pq := pageQuery{
		op:   "scan all",
		sql:  "SELECT " + eventColumns + " FROM events WHERE position > ? ORDER BY position LIMIT ?",
		args: func(after int64) []any { return []any{after, scanPageSize} },
		key:  func(e eventstore.Event) int64 { return int64(e.GlobalPosition) },
		size: scanPageSize,
	}
	return func(yield func(eventstore.Event, error) bool) {
		s.readPages(ctx, pq, clampKey(after), yield)
	}
}
