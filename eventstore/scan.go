package eventstore

import (
	"context"
	"iter"
)

// Scanner is a store that reads its whole log in fewer, larger reads than ReadAll's pages, for a
// reader that goes through all of it once, from a cold start, as fast as it can (audit verify).
// eventstore/postgres and eventstore/sqlite implement it.
type Scanner interface {
	// ScanAll yields the events of the unfiltered global log after position `after`, in order,
	// as ReadAll(ctx, after, Filter{}) does: every event committed before the call, with the
	// same fields. It ends at the end of the log; events appended during the scan may be left
	// out.
	ScanAll(ctx context.Context, after uint64) iter.Seq2[Event, error]
}
