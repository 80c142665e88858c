package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/internal/sqlitebusy"
	"github.com/idlog/idlog/lease"
	"github.com/idlog/idlog/migrations"
)

// writeRequest is one unit of work for the writer: an append or a checkpoint save.
type writeRequest struct {
	ctx context.Context
	// apply runs inside the batch transaction, within a savepoint of its own. An error rolls back
	// only this request's changes.
	apply  func(w *writer) error
	events int        // how many rows it will write, to bound a batch
	done   chan error // buffered: the writer never waits for the caller
}

// writer is the write connection and its prepared statements. Only the writer goroutine uses it
// after Open.
type writer struct {
	conn  *sql.Conn
	stmts []*sql.Stmt

	begin, commit, rollback             *sql.Stmt
	savepoint, release, rollbackTo      *sql.Stmt
	eventByID, streamRange, streamVer   *sql.Stmt
	insertEvent, upsertStream           *sql.Stmt
	releaseKey, claimKey, setCheckpoint *sql.Stmt
	insertOutbox, streamKeyState        *sql.Stmt
	setDataKey                          *sql.Stmt
}

func newWriter(ctx context.Context, conn *sql.Conn) (*writer, error) {
	w := &writer{conn: conn}
	// Every statement of the writer but BEGIN runs with the lock held; commitBatch waits at BEGIN
	// (package sqlitebusy) rather than in SQLite's busy handler.
	if _, err := conn.ExecContext(ctx, "PRAGMA busy_timeout = 0"); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("turn the busy handler off: %w", err)
	}
	for _, p := range []struct {
		st  **sql.Stmt
		sql string
	}{
		// IMMEDIATE takes the write lock at once: a deferred transaction that reads first could
		// fail with SQLITE_BUSY when it upgrades, if another process wrote meanwhile.
		{&w.begin, "BEGIN IMMEDIATE"},
		{&w.commit, "COMMIT"},
		{&w.rollback, "ROLLBACK"},
		{&w.savepoint, "SAVEPOINT append"},
		{&w.release, "RELEASE append"},
		{&w.rollbackTo, "ROLLBACK TO append"},
		{&w.eventByID, "SELECT stream_id, stream_version, position, recorded_at FROM events WHERE event_id = ?"},
		{&w.streamRange, "SELECT event_id, position FROM events WHERE stream_id = ? AND stream_version BETWEEN ? AND ? ORDER BY stream_version"},
		{&w.streamVer, "SELECT version FROM streams WHERE stream_id = ?"},
		{&w.insertEvent, `INSERT INTO events (event_id, stream_id, stream_version, event_type, schema_version, data, metadata, recorded_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`},
		// A stream's data key is set once, by the append that creates it (Append.DataKey).
		{&w.upsertStream, `INSERT INTO streams (stream_id, version, data_key) VALUES (?, ?, ?)
			ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version, data_key = COALESCE(streams.data_key, excluded.data_key)`},
		{&w.releaseKey, "DELETE FROM unique_keys WHERE key = ? AND stream_id = ?"},
		{&w.insertOutbox, `INSERT INTO outbox (id, kind, channel, uid, sealed, created_at, expires_at, next_attempt_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`},
		// A row of personal_data_keys is a key kept before migration 00280, or an erasure.
		// The stream's version and whether the user has a data key, in one statement.
		// One look-up of the stream's row: no row reads as version NULL and no key.
		{&w.streamKeyState, `SELECT s.version, s.data_key IS NOT NULL
			OR EXISTS (SELECT 1 FROM personal_data_keys WHERE uid = ?2)
			FROM (SELECT 1) LEFT JOIN streams s ON s.stream_id = ?1`},
		{&w.setDataKey, "UPDATE streams SET data_key = ? WHERE stream_id = ? AND data_key IS NULL"},
		{&w.claimKey, "INSERT INTO unique_keys (key, stream_id, claimed_at) VALUES (?, ?, ?) ON CONFLICT (key) DO NOTHING"},
		{&w.setCheckpoint, `INSERT INTO checkpoints (name, position, updated_at) VALUES (?, ?, ?)
			ON CONFLICT (name) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at`},
	} {
		st, err := conn.PrepareContext(ctx, p.sql)
		if err != nil {
			w.close()
			return nil, fmt.Errorf("prepare %q: %w", p.sql, err)
		}
		*p.st = st
		w.stmts = append(w.stmts, st)
	}
	return w, nil
}

func (w *writer) close() error {
	var errs []error
	for _, st := range w.stmts {
		errs = append(errs, st.Close())
	}
	w.stmts = nil
	errs = append(errs, w.conn.Close())
	return errors.Join(errs...)
}

// runWriter serves the queue until Close closes it, committing whatever is queued at each turn
// in one transaction.
func (s *Store) runWriter() {
	defer close(s.done)
	batch := make([]*writeRequest, 0, maxBatch)
	for first := range s.reqs {
		batch = append(batch[:0], first)
		events := first.events
	fill:
		for len(batch) < maxBatch && events < maxBatchEvents {
			select {
			case r, ok := <-s.reqs:
				if !ok {
					break fill
				}
				batch = append(batch, r)
				events += r.events
			default:
				break fill
			}
		}
		if s.w.commitBatch(batch) {
			s.committed.Notify()
		}
		clear(batch) // drop references to answered requests
	}
}

// commitBatch runs the batch in one transaction and answers every request. It reports whether
// anything was committed.
func (w *writer) commitBatch(batch []*writeRequest) bool {
	// The transaction outlives any one caller: a caller giving up must not roll back the others.
	ctx := context.Background()
	live := batch[:0:0]
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.done <- err // gave up while queued: never started
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return false
	}
	failAll := func(err error) {
		for _, r := range live {
			r.done <- err
		}
	}
	// The lock is taken at BEGIN. While another connection holds it, try again a fraction of a
	// millisecond later (newWriter turned the busy handler off): the others (projectors, the
	// attempt limiter) hold it for less than that, and the busy handler slept 1 ms and more.
	if err := sqlitebusy.Retry(ctx, busyTimeoutMS*time.Millisecond, func() error {
		_, err := w.begin.ExecContext(ctx)
		return err
	}); err != nil {
		failAll(fmt.Errorf("eventstore/sqlite: begin: %w", err))
		return false
	}
	errs := make([]error, len(live))
	stored := 0
	// A lone request needs no savepoint: on failure the whole transaction is its own.
	useSavepoints := len(live) > 1
	for i, r := range live {
		if useSavepoints {
			if _, err := w.savepoint.ExecContext(ctx); err != nil {
				w.abort(ctx)
				failAll(fmt.Errorf("eventstore/sqlite: savepoint: %w", err))
				return false
			}
		}
		errs[i] = r.apply(w)
		if !useSavepoints {
			if errs[i] == nil {
				stored++
			}
			break
		}
		var err error
		if errs[i] == nil {
			stored++
			_, err = w.release.ExecContext(ctx)
		} else if _, err = w.rollbackTo.ExecContext(ctx); err == nil {
			_, err = w.release.ExecContext(ctx)
		}
		if err != nil {
			// Some errors (I/O, full disk) make SQLite roll the whole transaction back, and with
			// it the savepoint: nothing of the batch is stored.
			w.abort(ctx)
			failAll(fmt.Errorf("eventstore/sqlite: savepoint after %v: %w", errs[i], err))
			return false
		}
	}
	if stored == 0 {
		w.abort(ctx)
		for i, r := range live {
			r.done <- errs[i]
		}
		return false
	}
	if _, err := w.commit.ExecContext(ctx); err != nil {
		w.abort(ctx)
		// Even the requests that failed get the commit error: their failure may have been decided
		// against changes of this batch that are now undone.
		failAll(fmt.Errorf("eventstore/sqlite: commit: %w", err))
		return false
	}
	for i, r := range live {
		r.done <- errs[i]
	}
	return true
}

// abort rolls back the open transaction; if SQLite already did, the error is expected and moot.
func (w *writer) abort(ctx context.Context) { _, _ = w.rollback.ExecContext(ctx) }

// submit queues r for the writer and waits for its answer.
func (s *Store) submit(r *writeRequest, op string) error {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return errClosed(op)
	}
	select {
	case s.reqs <- r:
	case <-r.ctx.Done():
		s.mu.RUnlock()
		return r.ctx.Err()
	}
	s.mu.RUnlock()
	select {
	case err := <-r.done:
		return err
	case <-r.ctx.Done():
		// The append may still commit; the caller, like any caller whose request timed out,
		// learns the outcome by retrying with the same event ids.
		return r.ctx.Err()
	}
}

// newRow is one event ready for insertion, encoded outside the writer so that the writer's time
// goes to SQLite only.
type newRow struct {
	id       string
	typ      string
	schema   int
	data     string
	metadata string
}

// Append implements eventstore.Store.
func (s *Store) Append(ctx context.Context, a eventstore.Append) (eventstore.AppendResult, error) {
	if err := a.Validate(); err != nil {
		return eventstore.AppendResult{}, err
	}
	if err := ctx.Err(); err != nil {
		return eventstore.AppendResult{}, err
	}
	events, err := eventstore.WithIDs(a.Events)
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	a.Events = events
	rows := make([]newRow, len(events))
	for i, e := range events {
		md, err := json.Marshal(e.Metadata)
		if err != nil {
			return eventstore.AppendResult{}, fmt.Errorf("%w: event %d metadata: %v", eventstore.ErrInvalidAppend, i, err)
		}
		rows[i] = newRow{id: e.ID.String(), typ: e.Type, schema: e.SchemaVersion, data: string(e.Data), metadata: string(md)}
	}
	claims := slices.Clone(a.Claim)
	slices.Sort(claims) // a fixed order, so the reported taken key does not depend on the caller's
	claims = slices.Compact(claims)

	var res eventstore.AppendResult
	r := &writeRequest{
		ctx:    ctx,
		events: len(rows),
		done:   make(chan error, 1),
		apply: func(w *writer) error {
			var err error
			res, err = w.append(a, rows, claims)
			if err == nil && s.opts.BeforeCommit != nil {
				s.opts.BeforeCommit(ctx, a)
			}
			return err
		},
	}
	if err := s.submit(r, "append"); err != nil {
		return eventstore.AppendResult{}, err
	}
	return res, nil
}

// append writes one append inside the current transaction. Writes are serialised, so what it
// reads cannot change before it writes.
func (w *writer) append(a eventstore.Append, rows []newRow, claims []string) (eventstore.AppendResult, error) {
	ctx := context.Background()
	// The data key first, even before a retry is recognised: a retry sealed with a new key must
	// learn that the stored events use another one. The key is written with the stream's row
	// (upsertStream), which the append writes anyway: a table of its own would cost its page.
	var dataKey []byte
	cur := int64(-1) // not read yet
	if a.DataKey != nil {
		var ver sql.NullInt64
		var taken bool
		if err := w.streamKeyState.QueryRowContext(ctx, a.Stream, a.DataKey.UID).Scan(&ver, &taken); err != nil {
			return eventstore.AppendResult{}, fmt.Errorf("eventstore/sqlite: append to %q: look up the data key: %w", a.Stream, err)
		}
		if taken {
			return eventstore.AppendResult{}, fmt.Errorf("%w: user %q (append to %q)", eventstore.ErrDataKeyExists, a.DataKey.UID, a.Stream)
		}
		dataKey, cur = a.DataKey.Wrapped, ver.Int64
	}
	if res, found, err := w.storedAlready(ctx, a.Stream, rows); err != nil || found {
		if err == nil && dataKey != nil {
			// Events stored without a key (by a store that did not seal): the key is kept all
			// the same, as the caller will cache it as the user's.
			if _, err := w.setDataKey.ExecContext(ctx, dataKey, a.Stream); err != nil {
				return eventstore.AppendResult{}, fmt.Errorf("eventstore/sqlite: append to %q: store the data key: %w", a.Stream, err)
			}
		}
		return res, err
	}

	if cur < 0 {
		switch err := w.streamVer.QueryRowContext(ctx, a.Stream).Scan(&cur); {
		case errors.Is(err, sql.ErrNoRows):
			cur = 0
		case err != nil:
			return eventstore.AppendResult{}, fmt.Errorf("eventstore/sqlite: append to %q: read stream version: %w", a.Stream, err)
		}
	}
	if a.Expected != eventstore.Any && int64(a.Expected) != cur {
		actual := fmt.Sprintf("is at version %d", cur)
		if cur == 0 {
			actual = "does not exist"
		}
		return eventstore.AppendResult{}, fmt.Errorf("%w: stream %q expected %s, but it %s", eventstore.ErrConcurrency, a.Stream, a.Expected, actual)
	}

	now := time.Now().UTC().Truncate(time.Microsecond)
	micros := now.UnixMicro()
	for _, k := range a.Release {
		if _, err := w.releaseKey.ExecContext(ctx, k, a.Stream); err != nil {
			return eventstore.AppendResult{}, fmt.Errorf("eventstore/sqlite: append to %q: release key %q: %w", a.Stream, k, err)
		}
	}
	for _, k := range claims {
		r, err := w.claimKey.ExecContext(ctx, k, a.Stream, micros)
		if err != nil {
			return eventstore.AppendResult{}, fmt.Errorf("eventstore/sqlite: append to %q: claim key %q: %w", a.Stream, k, err)
		}
		if n, err := r.RowsAffected(); err != nil {
			return eventstore.AppendResult{}, fmt.Errorf("eventstore/sqlite: append to %q: claim key %q: %w", a.Stream, k, err)
		} else if n == 0 {
			return eventstore.AppendResult{}, &eventstore.KeyTakenError{Key: k}
		}
	}

	res := eventstore.AppendResult{
		FirstVersion: uint64(cur) + 1,
		LastVersion:  uint64(cur) + uint64(len(rows)),
		RecordedAt:   now,
	}
	for i, row := range rows {
		r, err := w.insertEvent.ExecContext(ctx, row.id, a.Stream, cur+1+int64(i), row.typ, row.schema, row.data, row.metadata, micros)
		if err != nil {
			// The first id was checked; a later one may be stored by another append.
			if _, dup, _ := w.lookup(ctx, row.id); dup {
				return eventstore.AppendResult{}, fmt.Errorf("%w: event %s (number %d of the append to %q) is already stored", eventstore.ErrDuplicateEvent, row.id, i, a.Stream)
			}
			return eventstore.AppendResult{}, fmt.Errorf("eventstore/sqlite: append to %q: insert event %s: %w", a.Stream, row.id, err)
		}
		pos, err := r.LastInsertId()
		if err != nil {
			return eventstore.AppendResult{}, fmt.Errorf("eventstore/sqlite: append to %q: position of event %s: %w", a.Stream, row.id, err)
		}
		if i == 0 {
			res.FirstPosition = uint64(pos)
		}
		res.LastPosition = uint64(pos)
	}
	if _, err := w.upsertStream.ExecContext(ctx, a.Stream, int64(res.LastVersion), dataKey); err != nil {
		return eventstore.AppendResult{}, fmt.Errorf("eventstore/sqlite: append to %q: update stream version: %w", a.Stream, err)
	}
	for _, m := range a.Outbox {
		created := m.CreatedAt
		if created.IsZero() {
			created = now
		}
		if _, err := w.insertOutbox.ExecContext(ctx, m.ID.String(), m.Kind, m.Channel, m.UID, m.Sealed,
			created.UnixMilli(), m.ExpiresAt.UnixMilli(), created.UnixMilli()); err != nil {
			return eventstore.AppendResult{}, fmt.Errorf("eventstore/sqlite: append to %q: queue outbox message %s: %w", a.Stream, m.ID, err)
		}
	}
	return res, nil
}

// KeepsOutbox implements eventstore.OutboxKeeper: Append.Outbox is written in the append's
// transaction (table outbox, migration 00140).
func (s *Store) KeepsOutbox() bool { return true }

// KeepsDataKeys implements eventstore.DataKeyKeeper: Append.DataKey is written in the append's
// transaction, in the stream's row of streams (migration 00280). Keys written before that, and
// erasures, are rows of personal_data_keys (migration 00180), which Append checks as well.
func (s *Store) KeepsDataKeys() bool { return true }

type storedEvent struct {
	stream   string
	version  int64
	position int64
	recorded int64
}

func (w *writer) lookup(ctx context.Context, id string) (storedEvent, bool, error) {
	var e storedEvent
	err := w.eventByID.QueryRowContext(ctx, id).Scan(&e.stream, &e.version, &e.position, &e.recorded)
	if errors.Is(err, sql.ErrNoRows) {
		return e, false, nil
	}
	return e, err == nil, err
}

// storedAlready recognises a retry: if the append's first event id is stored, the append is a
// faithful retry only if all its ids are stored in order, in this stream, at consecutive
// versions. Then it returns the original result; otherwise ErrDuplicateEvent.
func (w *writer) storedAlready(ctx context.Context, stream string, rows []newRow) (eventstore.AppendResult, bool, error) {
	first, found, err := w.lookup(ctx, rows[0].id)
	if err != nil {
		return eventstore.AppendResult{}, false, fmt.Errorf("eventstore/sqlite: append to %q: look up event %s: %w", stream, rows[0].id, err)
	}
	if !found {
		return eventstore.AppendResult{}, false, nil
	}
	if first.stream != stream {
		return eventstore.AppendResult{}, false, fmt.Errorf("%w: event %s is stored in stream %q, not %q", eventstore.ErrDuplicateEvent, rows[0].id, first.stream, stream)
	}
	last := first.version + int64(len(rows)) - 1
	q, err := w.streamRange.QueryContext(ctx, stream, first.version, last)
	if err != nil {
		return eventstore.AppendResult{}, false, fmt.Errorf("eventstore/sqlite: append to %q: read stored events: %w", stream, err)
	}
	defer q.Close()
	res := eventstore.AppendResult{
		FirstVersion:  uint64(first.version),
		LastVersion:   uint64(last),
		FirstPosition: uint64(first.position),
		RecordedAt:    time.UnixMicro(first.recorded).UTC(),
	}
	n := 0
	for q.Next() {
		var id string
		var pos int64
		if err := q.Scan(&id, &pos); err != nil {
			return eventstore.AppendResult{}, false, fmt.Errorf("eventstore/sqlite: append to %q: read stored events: %w", stream, err)
		}
		if n >= len(rows) || id != rows[n].id {
			break
		}
		res.LastPosition = uint64(pos)
		n++
	}
	if err := q.Err(); err != nil {
		return eventstore.AppendResult{}, false, fmt.Errorf("eventstore/sqlite: append to %q: read stored events: %w", stream, err)
	}
	if n != len(rows) {
		return eventstore.AppendResult{}, false, fmt.Errorf("%w: only the first %d of %d events of the append to %q are stored (from version %d)", eventstore.ErrDuplicateEvent, n, len(rows), stream, first.version)
	}
	return res, true, nil
}

// SetCheckpoint implements eventstore.Checkpoints. It goes through the writer like an append, so
// it never meets a lock either; under a follower's fencing token (see eventstore.Checkpoints) the
// check runs in the same transaction as the write.
func (s *Store) SetCheckpoint(ctx context.Context, name string, pos uint64) error {
	if name == "" {
		return errors.New("eventstore/sqlite: set checkpoint: empty name")
	}
	if pos > math.MaxInt64 {
		return fmt.Errorf("eventstore/sqlite: set checkpoint %q: position %d out of range", name, pos)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	r := &writeRequest{
		ctx:  ctx,
		done: make(chan error, 1),
		apply: func(w *writer) error {
			// The token from ctx, not its end: a query cut short would interrupt the batch.
			if err := lease.Check(context.WithoutCancel(ctx), w.conn, migrations.SQLite); err != nil {
				return err
			}
			_, err := w.setCheckpoint.ExecContext(context.Background(), name, int64(pos), time.Now().UnixMicro())
			if err != nil {
				return fmt.Errorf("eventstore/sqlite: set checkpoint %q: %w", name, err)
			}
			return nil
		},
	}
	return s.submit(r, "set checkpoint")
}
