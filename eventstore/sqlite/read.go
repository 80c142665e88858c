package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/idlog/idlog/eventstore"
)

// pageSize is how many rows one read query fetches. Each page is read whole and its query closed
// before any event is yielded, so a slow consumer holds no connection and no snapshot (which
// would stop WAL checkpoints and let the -wal file grow).
const pageSize = 500

const eventColumns = "position, event_id, stream_id, stream_version, event_type, schema_version, data, metadata, recorded_at"

// pageQuery is a keyset-paged query: the SQL (or the statement prepared from it) and its arguments
// for the page after key.
type pageQuery struct {
	op   string
	sql  string
	stmt *sql.Stmt // when set, run instead of sql
	args func(after int64) []any
	key  func(e eventstore.Event) int64 // the key of a yielded event, for the next page
	size int                            // rows a full page holds: pageSize when 0
}

const readStreamSQL = "SELECT " + eventColumns + " FROM events WHERE stream_id = ? AND stream_version > ? ORDER BY stream_version LIMIT ?"

// ReadStream implements eventstore.Store.
func (s *Store) ReadStream(ctx context.Context, stream string, afterVersion uint64) iter.Seq2[eventstore.Event, error] {
	pq := pageQuery{
		op:   "read stream " + stream,
		stmt: s.readStream,
		args: func(after int64) []any { return []any{stream, after, pageSize} },
		key:  func(e eventstore.Event) int64 { return int64(e.StreamVersion) },
	}
	return func(yield func(eventstore.Event, error) bool) {
		s.readPages(ctx, pq, clampKey(afterVersion), yield)
	}
}

// ReadAll implements eventstore.Store.
func (s *Store) ReadAll(ctx context.Context, after uint64, f eventstore.Filter) iter.Seq2[eventstore.Event, error] {
	pq := logQuery("read all", f)
	return func(yield func(eventstore.Event, error) bool) {
		s.readPages(ctx, pq, clampKey(after), yield)
	}
}

// Subscribe implements eventstore.Store. Once caught up it waits for the writer's signal after a
// commit. Rows that another process wrote to the file ring it too: while subscriptions are live,
// one read of the log's end every PollInterval (watchHead) looks for them on behalf of all, so
// idle subscribers do not each read the log.
func (s *Store) Subscribe(ctx context.Context, after uint64, f eventstore.Filter) iter.Seq2[eventstore.Event, error] {
	pq := logQuery("subscribe", f)
	return func(yield func(eventstore.Event, error) bool) {
		defer s.watch()()
		// A last net, should the end of the log not have moved while rows appeared (never with
		// an append-only log, whose positions only grow).
		tick := time.NewTicker(idleWait * s.opts.PollInterval)
		defer tick.Stop()
		last := clampKey(after)
		for {
			// Taken before reading: a commit that lands after the read's snapshot still wakes us.
			wake := s.committed.Changed()
			var ok bool
			if last, ok = s.readPages(ctx, pq, last, yield); !ok {
				return
			}
			select {
			case <-wake:
			case <-tick.C:
			case <-ctx.Done():
				yield(eventstore.Event{}, ctx.Err())
				return
			case <-s.closing:
				yield(eventstore.Event{}, errClosed(pq.op))
				return
			}
		}
	}
}

// logQuery builds the paged query of the global log for f. The filter runs in SQL.
func logQuery(op string, f eventstore.Filter) pageQuery {
	var prefixSQL string
	var prefixArgs []any
	if f.StreamPrefix != "" {
		// Compared as bytes: LIKE would treat % and _ in the prefix as wildcards and ignore ASCII
		// case, and substr on TEXT counts characters, not bytes.
		prefixSQL = " AND substr(CAST(stream_id AS BLOB), 1, ?) = ?"
		prefixArgs = []any{len(f.StreamPrefix), []byte(f.StreamPrefix)}
	}
	types := slices.Clone(f.Types)
	slices.Sort(types)
	types = slices.Compact(types) // a type named twice must not deliver its events twice
	pq := pageQuery{op: op, key: func(e eventstore.Event) int64 { return int64(e.GlobalPosition) }}
	switch len(types) {
	case 0:
		pq.sql = "SELECT " + eventColumns + " FROM events WHERE position > ?" + prefixSQL + " ORDER BY position LIMIT ?"
		pq.args = func(after int64) []any {
			return append(append([]any{after}, prefixArgs...), pageSize)
		}
	default:
		// One ordered range scan of the (event_type, position) index per type, merged. With
		// `event_type IN (...)` SQLite would either sort every matching row after `after` for each
		// page, or scan the whole log for rare types.
		sub := "SELECT " + eventColumns + " FROM events WHERE event_type = ? AND position > ?" + prefixSQL + " ORDER BY position LIMIT ?"
		if len(types) == 1 {
			pq.sql = sub
		} else {
			parts := make([]string, len(types))
			for i := range types {
				parts[i] = "SELECT * FROM (" + sub + ")"
			}
			pq.sql = strings.Join(parts, " UNION ALL ") + " ORDER BY position LIMIT ?"
		}
		pq.args = func(after int64) []any {
			args := make([]any, 0, len(types)*(3+len(prefixArgs))+1)
			for _, t := range types {
				args = append(append(append(args, t, after), prefixArgs...), pageSize)
			}
			if len(types) > 1 {
				args = append(args, pageSize)
			}
			return args
		}
	}
	return pq
}

// readPages yields the rows of pq after key, page by page, until a page comes back short (the end
// as it is now). It returns the last key seen, and false when iteration must stop: the consumer
// stopped, or an error was yielded.
func (s *Store) readPages(ctx context.Context, pq pageQuery, after int64, yield func(eventstore.Event, error) bool) (int64, bool) {
	var page []eventstore.Event
	for {
		if err := ctx.Err(); err != nil {
			yield(eventstore.Event{}, err)
			return after, false
		}
		if s.isClosed() {
			yield(eventstore.Event{}, errClosed(pq.op))
			return after, false
		}
		var err error
		page, err = s.fetch(ctx, pq, pq.args(after), page[:0])
		if err != nil {
			yield(eventstore.Event{}, s.readErr(ctx, pq.op, err))
			return after, false
		}
		for i := range page {
			if !yield(page[i], nil) {
				return after, false
			}
			after = pq.key(page[i])
		}
		if len(page) < cmp.Or(pq.size, pageSize) {
			return after, true
		}
		clear(page) // let the consumer's copies be the only references to the events' data
	}
}

// fetch runs one page query and returns its rows appended to buf.
func (s *Store) fetch(ctx context.Context, pq pageQuery, args []any, buf []eventstore.Event) ([]eventstore.Event, error) {
	var (
		rows *sql.Rows
		err  error
	)
	if pq.stmt != nil {
		rows, err = pq.stmt.QueryContext(ctx, args...)
	} else {
		rows, err = s.rdb.QueryContext(ctx, pq.sql, args...)
	}
	if err != nil {
		return buf, err
	}
	defer rows.Close()
	var id, metadata sql.RawBytes // decoded at once, so their buffers can be reused
	for rows.Next() {
		var (
			e                 eventstore.Event
			pos, ver, rec, sv int64
			data              []byte
		)
		if err := rows.Scan(&pos, &id, &e.StreamID, &ver, &e.Type, &sv, &data, &metadata, &rec); err != nil {
			return buf, err
		}
		if e.ID, err = uuid.ParseBytes(id); err != nil {
			return buf, fmt.Errorf("event at position %d: bad event id %q: %w", pos, id, err)
		}
		if string(metadata) != "{}" {
			if err := decodeMetadata(metadata, &e.Metadata); err != nil {
				return buf, fmt.Errorf("event at position %d: bad metadata: %w", pos, err)
			}
		}
		e.GlobalPosition, e.StreamVersion, e.SchemaVersion = uint64(pos), uint64(ver), int(sv)
		e.Data = json.RawMessage(data)
		e.RecordedAt = time.UnixMicro(rec).UTC()
		buf = append(buf, e)
	}
	return buf, rows.Err()
}

// readErr says why a read failed: the caller's context, Close, or the database.
func (s *Store) readErr(ctx context.Context, op string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return ctxErr
	}
	if s.isClosed() {
		return errClosed(op)
	}
	return fmt.Errorf("eventstore/sqlite: %s: %w", op, err)
}

// clampKey maps a uint64 position or version onto SQLite's int64 keys; nothing is stored above
// MaxInt64, so reading after it reads nothing, as it should.
func clampKey(k uint64) int64 {
	if k > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(k)
}

// Checkpoint implements eventstore.Checkpoints.
func (s *Store) Checkpoint(ctx context.Context, name string) (uint64, error) {
	if name == "" {
		return 0, errors.New("eventstore/sqlite: checkpoint: empty name")
	}
	if s.isClosed() {
		return 0, errClosed("checkpoint")
	}
	var pos int64
	err := s.rdb.QueryRowContext(ctx, "SELECT position FROM checkpoints WHERE name = ?", name).Scan(&pos)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return 0, nil
	case err != nil:
		return 0, s.readErr(ctx, "checkpoint "+name, err)
	}
	return uint64(pos), nil
}

var _ eventstore.KeyOwners = (*Store)(nil)

// KeyOwner implements eventstore.KeyOwners.
func (s *Store) KeyOwner(ctx context.Context, key string) (string, error) {
	if s.isClosed() {
		return "", errClosed("key owner")
	}
	var stream string
	err := s.rdb.QueryRowContext(ctx, "SELECT stream_id FROM unique_keys WHERE key = ?", key).Scan(&stream)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return "", fmt.Errorf("%w: %q", eventstore.ErrKeyNotClaimed, key)
	case err != nil:
		return "", s.readErr(ctx, "key owner", err)
	}
	return stream, nil
}

// idleWait is how many poll intervals a subscriber waits, at most, with no signal.
const idleWait = 25

// watch counts a live subscription, starting watchHead for the first, and returns the function
// that uncounts it.
func (s *Store) watch() func() {
	s.watchMu.Lock()
	s.watching++
	if !s.watcher {
		s.watcher = true
		go s.watchHead()
	}
	s.watchMu.Unlock()
	return func() {
		s.watchMu.Lock()
		s.watching--
		s.watchMu.Unlock()
	}
}

// watchHead reads the end of the log every PollInterval while subscriptions are live, and wakes
// them all when it moved: rows this process did not write (another process shares the file).
func (s *Store) watchHead() {
	t := time.NewTicker(s.opts.PollInterval)
	defer t.Stop()
	seen := int64(-1)
	for {
		select {
		case <-s.closing:
			s.watchMu.Lock()
			s.watcher = false
			s.watchMu.Unlock()
			return
		case <-t.C:
		}
		s.watchMu.Lock()
		if s.watching == 0 {
			s.watcher = false
			s.watchMu.Unlock()
			return
		}
		s.watchMu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), s.opts.PollInterval)
		var head int64
		err := s.rdb.QueryRowContext(ctx, "SELECT coalesce(max(position), 0) FROM events").Scan(&head)
		cancel()
		if err != nil || head == seen {
			continue
		}
		// The first read too: a row may have landed between a subscriber's read and this one.
		seen = head
		s.committed.Notify()
	}
}
