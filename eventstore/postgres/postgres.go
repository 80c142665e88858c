// Package postgres is idlog's production event store: PostgreSQL through sqlx and lib/pq.
//
// An append is one call of the SQL function idlog_append (migrations/postgres/00001), so it costs
// one round trip and appends to different streams never wait for each other. Global positions are
// (transaction id << 20 | index in the append); readers of the global log only read below the
// oldest transaction still running, so an event that commits late with a lower position is never
// skipped. The price: followers see an event only once every older write transaction in the
// cluster has ended, so a long-running write transaction delays them (never loses an event).
package postgres

import (
	"context"
	"crypto/rand"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"net/url"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/follower"
	"github.com/idlog/idlog/internal/stmtcache"
	"github.com/idlog/idlog/lease"
	"github.com/idlog/idlog/migrations"
)

// Options configures a Store.
type Options struct {
	// DSN is a lib/pq connection string or postgres:// URL.
	DSN string
	// PollInterval bounds how late a subscriber notices events appended by other processes that
	// do not notify (see Replicas). Appends through this Store wake subscribers at once, and
	// events known to be held back behind an older transaction are looked for again within
	// 100ms whatever the interval. Default 100ms; a safety net of seconds with Replicas.
	PollInterval time.Duration
	// PageSize is how many events one read query fetches. Default 1000.
	PageSize int
	// MaxOpenConns caps the connection pool. Default 16.
	MaxOpenConns int
	// Timeouts are set on every connection of the pool (see SessionTimeouts). Migrations run on
	// a connection of their own without them: a long index build must not be cut.
	Timeouts SessionTimeouts
	// BeforeCommit, when set, runs inside each append's transaction before it commits (tests use
	// it to hold transactions open). Appends then take three round trips instead of one.
	BeforeCommit func(ctx context.Context, a eventstore.Append)
	// Replicas: other processes (replicas) append to this database too. Each append then
	// notifies (LISTEN/NOTIFY) after it commits, and the store listens, so its subscribers see
	// other replicas' appends at once rather than at their next poll.
	Replicas bool
	// ProgressChannel, with Replicas, is a NOTIFY channel the store also listens to: each
	// notification rings Progressed (the projections' commits, for replicas that wait on them).
	ProgressChannel string
	// Connector, when set, makes the pool's connector from the pool's DSN instead of lib/pq's own
	// (tests count each request's round trips through it: internal/roundtrips).
	Connector func(dsn string) (driver.Connector, error)
}

func (o *Options) validate() error {
	if o.DSN == "" {
		return errors.New("postgres: DSN is empty")
	}
	if o.PollInterval < 0 {
		return fmt.Errorf("postgres: poll interval (%v) cannot be negative", o.PollInterval)
	}
	if o.PageSize < 0 || o.PageSize > 100000 {
		return fmt.Errorf("postgres: page size (%d) must be between 1 and 100000", o.PageSize)
	}
	if o.MaxOpenConns < 0 {
		return fmt.Errorf("postgres: max open conns (%d) cannot be negative", o.MaxOpenConns)
	}
	if o.PollInterval == 0 {
		o.PollInterval = 100 * time.Millisecond
	}
	if o.PageSize == 0 {
		o.PageSize = 1000
	}
	if o.MaxOpenConns == 0 {
		o.MaxOpenConns = 16
	}
	return nil
}

// Store is the Postgres event store. It implements eventstore.Store and eventstore.Checkpoints.
type Store struct {
	db     *sqlx.DB
	opts   Options
	closed atomic.Bool
	done   chan struct{}

	appended   eventstore.Signal // rung after every append: wakes subscribers
	progressed eventstore.Signal // rung at every notification of projection progress
	// notify wakes the notifier (Options.Replicas): an append committed up to toNotify.
	notify   chan struct{}
	toNotify atomic.Uint64
	instance string // names this store in its notifications
	// lastAppended is the highest position appended through this store (or, with Replicas, by
	// any process: notifications and watchHead raise it). A follower that has not
	// read up to it yet, though woken, is held back by the read horizon (an older transaction
	// still running) and looks again soon instead of waiting for the next poll.
	lastAppended atomic.Uint64
	// lastRead is the highest position a read of the unfiltered global log returned.
	lastRead atomic.Uint64
	// readStream is ReadStream's query, prepared (on each connection as it is first used): a
	// user's stream is read on every request, and an unprepared query costs a second round trip.
	readStream *sql.Stmt
	// logPage is the unfiltered global read's query, prepared likewise: every live follower's
	// read after every append runs it.
	logPage *sql.Stmt
	// stmts prepares the other statements of every request once (the append, the owner of a
	// unique key): unprepared, each cost a parse, a plan and a second round trip.
	stmts *stmtcache.Cache
}

var (
	_ eventstore.Store       = (*Store)(nil)
	_ eventstore.Checkpoints = (*Store)(nil)
)

// Open connects, applies pending migrations and returns the store.
func Open(ctx context.Context, o Options) (*Store, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	poolDSN, err := WithSessionTimeouts(o.DSN, o.Timeouts)
	if err != nil {
		return nil, err
	}
	connector := func(dsn string) (driver.Connector, error) { return pq.NewConnector(dsn) }
	if o.Connector != nil {
		connector = o.Connector
	}
	c, err := connector(poolDSN)
	if err != nil {
		return nil, fmt.Errorf("postgres: open %s: %w", Redact(o.DSN), err)
	}
	db := sqlx.NewDb(sql.OpenDB(c), "postgres")
	db.SetMaxOpenConns(o.MaxOpenConns)
	db.SetMaxIdleConns(o.MaxOpenConns)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("postgres: connect to %s: %w", Redact(o.DSN), err)
	}
	if err := migrate(ctx, o, db); err != nil {
		db.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	readStream, err := db.PrepareContext(ctx, readStreamQuery)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("postgres: prepare the stream read: %w", err)
	}
	logPage, err := db.PrepareContext(ctx, globalPageQuery)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("postgres: prepare the log read: %w", err)
	}
	s := &Store{db: db, opts: o, done: make(chan struct{}), notify: make(chan struct{}, 1), instance: rand.Text(),
		readStream: readStream, logPage: logPage, stmts: stmtcache.New(db)}
	if o.Replicas {
		if err := s.listen(); err != nil {
			db.Close()
			return nil, fmt.Errorf("postgres: listen to %s: %w", Redact(o.DSN), err)
		}
		go s.watchHead()
		go s.notifier()
	}
	return s, nil
}

// migrate applies pending migrations, on the pool itself unless it carries session timeouts.
func migrate(ctx context.Context, o Options, pool *sqlx.DB) error {
	if o.Timeouts == (SessionTimeouts{}) {
		return migrations.Up(ctx, pool.DB, migrations.Postgres)
	}
	db, err := sql.Open("postgres", o.DSN)
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(2) // the migration lock holds one connection
	return migrations.Up(ctx, db, migrations.Postgres)
}

// Redact returns dsn with any password replaced, fit for logs and errors.
func Redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme == "" {
		return "(postgres connection string)"
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

// DB is the store's connection pool, for components that keep their tables in the same database
// (read models). They must not write to the event store's tables.
func (s *Store) DB() *sqlx.DB { return s.db }

// Close stops subscribers and closes the pool. It is safe to call more than once.
func (s *Store) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	close(s.done)
	_ = s.readStream.Close() // fails only if closed already; the pool's Close says what matters
	_ = s.logPage.Close()
	s.stmts.Close()
	return s.db.Close()
}

// Append implements eventstore.Store.
func (s *Store) Append(ctx context.Context, a eventstore.Append) (eventstore.AppendResult, error) {
	if s.closed.Load() {
		return eventstore.AppendResult{}, eventstore.ErrClosed
	}
	if err := a.Validate(); err != nil {
		return eventstore.AppendResult{}, err
	}
	events, err := eventstore.WithIDs(a.Events)
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	n := len(events)
	ids := make([]string, n)
	types := make([]string, n)
	versions := make([]int64, n)
	data := make([]string, n)
	meta := make([]string, n)
	for i, e := range events {
		ids[i] = e.ID.String()
		types[i] = e.Type
		versions[i] = int64(e.SchemaVersion)
		data[i] = string(e.Data)
		m, err := json.Marshal(e.Metadata)
		if err != nil {
			return eventstore.AppendResult{}, fmt.Errorf("postgres: encode metadata: %w", err)
		}
		meta[i] = string(m)
	}
	claims := slices.Clone(a.Claim)
	slices.Sort(claims) // a fixed order: two appends claiming the same keys cannot deadlock
	args := []any{a.Stream, int64(a.Expected), pq.Array(ids), pq.Array(types), pq.Array(versions),
		pq.Array(data), pq.Array(meta), pq.Array(claims), pq.Array(a.Release)}
	keyed := a.DataKey != nil
	if keyed {
		// The user's new data key in the same statement (migration 00230).
		args = append([]any{a.DataKey.UID, a.DataKey.Wrapped}, args...)
	}
	q := appendQueries[keyed]

	for attempt := 0; ; attempt++ {
		var r appendRow
		if s.opts.BeforeCommit == nil && len(a.Outbox) == 0 {
			err = s.stmts.QueryRowxContext(ctx, nil, q, args...).StructScan(&r)
		} else {
			err = s.appendInTx(ctx, a, q, args, &r)
		}
		if err == nil {
			res := r.result()
			s.committed(res.LastPosition)
			return res, nil
		}
		if isDataKeyTaken(err) {
			// Even for a retry of a stored append: its events are sealed with the stored key,
			// not this one, and the caller must learn it (see eventstore.Append.DataKey).
			return eventstore.AppendResult{}, s.appendError(a, err)
		}
		// Any failure may be a retry of an append that is already stored: answer it with the
		// original result. This costs a query only on the failure path.
		if orig, stored, lookErr := s.storedAlready(ctx, a.Stream, events); lookErr != nil {
			return eventstore.AppendResult{}, s.appendError(a, lookErr)
		} else if stored {
			return orig, nil
		}
		err = s.appendError(a, err)
		// With Any, losing the race for a version is not the caller's conflict: try again.
		if a.Expected == eventstore.Any && errors.Is(err, eventstore.ErrConcurrency) && attempt < 20 && ctx.Err() == nil {
			continue
		}
		return eventstore.AppendResult{}, err
	}
}

// storedAlready reports whether the events are stored already, as one append to stream in this
// order; if only some are, or elsewhere, it fails with ErrDuplicateEvent.
func (s *Store) storedAlready(ctx context.Context, stream string, events []eventstore.NewEvent) (eventstore.AppendResult, bool, error) {
	ids := make([]string, len(events))
	for i, e := range events {
		ids[i] = e.ID.String()
	}
	rows, err := s.query(ctx, `SELECT `+eventColumns+` FROM events WHERE event_id = ANY($1::uuid[]) ORDER BY position`, pq.Array(ids))
	if err != nil || len(rows) == 0 {
		return eventstore.AppendResult{}, false, err
	}
	faithful := len(rows) == len(events)
	for i := 0; faithful && i < len(rows); i++ {
		r := rows[i]
		faithful = r.ID == events[i].ID && r.StreamID == stream && r.StreamVersion == rows[0].StreamVersion+uint64(i)
	}
	if !faithful {
		return eventstore.AppendResult{}, false, fmt.Errorf("%w (stream %q)", eventstore.ErrDuplicateEvent, stream)
	}
	last := rows[len(rows)-1]
	return eventstore.AppendResult{
		FirstVersion: rows[0].StreamVersion, LastVersion: last.StreamVersion,
		FirstPosition: rows[0].GlobalPosition, LastPosition: last.GlobalPosition,
		RecordedAt: rows[0].RecordedAt,
	}, true, nil
}

func (s *Store) appendInTx(ctx context.Context, a eventstore.Append, q string, args []any, r *appendRow) error {
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after commit
	if err := s.stmts.QueryRowxContext(ctx, tx, q, args...).StructScan(r); err != nil {
		return err
	}
	if err := insertOutbox(ctx, tx, a.Outbox); err != nil {
		return err
	}
	if s.opts.BeforeCommit != nil {
		s.opts.BeforeCommit(ctx, a)
	}
	return tx.Commit()
}

// KeepsOutbox implements eventstore.OutboxKeeper: Append.Outbox is written in the append's
// transaction (table outbox, migration 00140).
func (s *Store) KeepsOutbox() bool { return true }

// KeepsDataKeys implements eventstore.DataKeyKeeper: Append.DataKey is written in the append's
// transaction (idlog_append_keyed, migration 00230; AppendBatch in its own transaction).
func (s *Store) KeepsDataKeys() bool { return true }

// isDataKeyTaken reports whether err is idlog_append_keyed's refusal of a second data key.
func isDataKeyTaken(err error) bool {
	var pe *pq.Error
	return errors.As(err, &pe) && pe.Code == "IDL03"
}

// insertDataKey stores a user's new data key inside tx, or fails with ErrDataKeyExists.
func insertDataKey(ctx context.Context, tx *sqlx.Tx, a eventstore.Append) error {
	r, err := tx.ExecContext(ctx, `INSERT INTO personal_data_keys (uid, wrapped) VALUES ($1, $2) ON CONFLICT (uid) DO NOTHING`,
		a.DataKey.UID, a.DataKey.Wrapped)
	if err != nil {
		return fmt.Errorf("postgres: append to %q: store the data key: %w", a.Stream, err)
	}
	if n, err := r.RowsAffected(); err != nil {
		return fmt.Errorf("postgres: append to %q: store the data key: %w", a.Stream, err)
	} else if n == 0 {
		return fmt.Errorf("%w: user %q (append to %q)", eventstore.ErrDataKeyExists, a.DataKey.UID, a.Stream)
	}
	return nil
}

// insertOutbox writes the outbox messages of an append inside its transaction. A message id that
// is stored already is the same message: kept once.
func insertOutbox(ctx context.Context, tx *sqlx.Tx, msgs []eventstore.OutboxMessage) error {
	for _, m := range msgs {
		created := m.CreatedAt
		if created.IsZero() {
			created = time.Now()
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO outbox (id, kind, channel, uid, sealed, created_at, expires_at, next_attempt_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $6) ON CONFLICT (id) DO NOTHING`,
			m.ID.String(), m.Kind, m.Channel, m.UID, m.Sealed, created.UnixMilli(), m.ExpiresAt.UnixMilli()); err != nil {
			return fmt.Errorf("postgres: queue outbox message %s: %w", m.ID, err)
		}
	}
	return nil
}

type appendRow struct {
	FirstVersion  int64     `db:"first_version"`
	LastVersion   int64     `db:"last_version"`
	FirstPosition int64     `db:"first_position"`
	LastPosition  int64     `db:"last_position"`
	RecordedAt    time.Time `db:"recorded_at"`
}

func (r appendRow) result() eventstore.AppendResult {
	return eventstore.AppendResult{
		FirstVersion:  uint64(r.FirstVersion),
		LastVersion:   uint64(r.LastVersion),
		FirstPosition: uint64(r.FirstPosition),
		LastPosition:  uint64(r.LastPosition),
		RecordedAt:    r.RecordedAt.UTC(),
	}
}

// appendError maps the SQLSTATEs raised by idlog_append to the store's errors.
func (s *Store) appendError(a eventstore.Append, err error) error {
	var pe *pq.Error
	if !errors.As(err, &pe) {
		if s.closed.Load() {
			return eventstore.ErrClosed
		}
		return fmt.Errorf("postgres: append to %q: %w", a.Stream, err)
	}
	switch pe.Code {
	case "IDL01":
		actual, _ := strconv.ParseInt(pe.Message, 10, 64)
		return fmt.Errorf("%w: stream %q expected %s, is at version %d", eventstore.ErrConcurrency, a.Stream, a.Expected, actual)
	case "IDL02":
		return &eventstore.KeyTakenError{Key: pe.Message}
	case "IDL03":
		return fmt.Errorf("%w: user %q (append to %q)", eventstore.ErrDataKeyExists, pe.Message, a.Stream)
	case "23505": // unique_violation
		if pe.Constraint == "events_event_id_key" { // and storedAlready found the first id free
			return fmt.Errorf("%w (stream %q)", eventstore.ErrDuplicateEvent, a.Stream)
		}
		// events_stream_version: a concurrent append wrote this version first.
		return fmt.Errorf("%w: stream %q expected %s, another append got there first", eventstore.ErrConcurrency, a.Stream, a.Expected)
	case "40P01", "40001": // deadlock or serialization failure: the caller may retry
		return fmt.Errorf("%w: stream %q: %s", eventstore.ErrConcurrency, a.Stream, pe.Message)
	}
	return fmt.Errorf("postgres: append to %q: %w", a.Stream, err)
}

// eventColumns are the columns every read of events selects, for little work on both sides:
// the event id's 16 bytes (uuid_send) and recorded_at as microseconds since 2000-01-01 UTC
// (timestamptz_send, far cheaper for the server than writing the time out, and for the client
// than parsing it) come as bytea, which lib/pq hands over as the bytes of the message, in the
// binary format of a statement with parameters; the data as the json it is rather than cast to
// text, which lib/pq would copy into a string; metadata field by field (decoding its JSON in Go
// costs more than the rest of a row together), a field that is absent as NULL rather than
// coalesced to the empty string. scanRow makes the event of a row.
const eventColumns = `position, uuid_send(event_id), stream_id, stream_version, event_type, schema_version, data,
	timestamptz_send(recorded_at), metadata->>'actor_uid', metadata->>'actor_role', metadata->>'ip',
	metadata->>'user_agent', metadata->>'correlation_id', metadata->>'causation_id', metadata->>'idempotency_key'`

// query runs a read and scans every row.
func (s *Store) query(ctx context.Context, q string, args ...any) ([]eventstore.Event, error) {
	rows, err := s.db.QueryContext(ctx, q, args...)
	return appendScanned(nil, rows, err)
}

const readStreamQuery = `SELECT ` + eventColumns + ` FROM events WHERE stream_id = $1 AND stream_version > $2 ORDER BY stream_version LIMIT $3`

// ReadStream implements eventstore.Store.
func (s *Store) ReadStream(ctx context.Context, stream string, afterVersion uint64) iter.Seq2[eventstore.Event, error] {
	return s.pages(ctx, 0, false, func(ctx context.Context, last eventstore.Event, first bool, buf []eventstore.Event) ([]eventstore.Event, error) {
		after := afterVersion
		if !first {
			after = last.StreamVersion
		}
		rows, err := s.readStream.QueryContext(ctx, stream, int64(after), s.opts.PageSize)
		return appendScanned(buf, rows, err)
	}, endOfData)
}

func endOfData(context.Context) (bool, error) { return true, nil }
func never(context.Context) (bool, error)     { return false, nil }

// ReadAll implements eventstore.Store. It yields every event committed before the call: if an
// older transaction still holds the read horizon below the newest such event, it waits for it.
func (s *Store) ReadAll(ctx context.Context, after uint64, f eventstore.Filter) iter.Seq2[eventstore.Event, error] {
	if s.closed.Load() {
		return eventstore.Failed(eventstore.ErrClosed)
	}
	var target int64
	if err := s.db.GetContext(ctx, &target, `SELECT coalesce(max(position), 0) FROM events`); err != nil {
		return eventstore.Failed(s.readError(ctx, err))
	}
	reached := func(ctx context.Context) (bool, error) {
		if target <= int64(after) {
			return true, nil
		}
		var horizon int64
		err := s.db.GetContext(ctx, &horizon, `SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint << 20`)
		return horizon > target, err
	}
	return s.pages(ctx, after, len(f.Types) == 0 && f.StreamPrefix == "", s.globalPage(after, f), reached)
}

// Subscribe implements eventstore.Store.
func (s *Store) Subscribe(ctx context.Context, after uint64, f eventstore.Filter) iter.Seq2[eventstore.Event, error] {
	return s.pages(ctx, after, len(f.Types) == 0 && f.StreamPrefix == "", s.globalPage(after, f), neverWithHead(s.opts.Replicas))
}

// globalPage reads the next page of the global log. Only positions below the oldest running
// transaction's id are read: see the package comment.
func (s *Store) globalPage(after uint64, f eventstore.Filter) pageFunc {
	// The unfiltered log, which every follower reads, goes through idlog_global_page: its plan
	// walks the primary key in order even before the table has statistics (migration 00002).
	filtered := len(f.Types) > 0 || f.StreamPrefix != ""
	q := globalPageQuery
	args := []any{nil, s.opts.PageSize}
	if filtered {
		q = `SELECT ` + eventColumns + ` FROM events
			WHERE position > $1
			  AND position < (SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint << 20)`
		if len(f.Types) > 0 {
			args = append(args, pq.Array(f.Types))
			q += fmt.Sprintf(" AND event_type = ANY($%d)", len(args))
		}
		if f.StreamPrefix != "" {
			args = append(args, f.StreamPrefix)
			q += fmt.Sprintf(" AND left(stream_id, length($%d)) = $%[1]d", len(args))
		}
		q += " ORDER BY position LIMIT $2"
	}
	return func(ctx context.Context, last eventstore.Event, first bool, buf []eventstore.Event) ([]eventstore.Event, error) {
		pos := after
		if !first {
			pos = last.GlobalPosition
		}
		args[0] = int64(pos)
		if !filtered {
			rows, err := s.logPage.QueryContext(ctx, args...)
			return appendScanned(buf, rows, err)
		}
		rows, err := s.db.QueryContext(ctx, q, args...)
		return appendScanned(buf, rows, err)
	}
}

// The append statements, by whether they store a data key. With Options.Replicas the other
// processes hear of an append after it committed, from the store's notifier (notify.go): a
// notification inside the append's own transaction would hold PostgreSQL's lock on the
// notification queue through the append's WAL flush, one committing append at a time.
const (
	appendQuery = `SELECT first_version, last_version, first_position, last_position, recorded_at
		FROM idlog_append($1, $2, $3::uuid[], $4, $5::int[], $6, $7, $8, $9)`
	appendKeyedQuery = `SELECT first_version, last_version, first_position, last_position, recorded_at
		FROM idlog_append_keyed($1, $2, $3, $4, $5::uuid[], $6, $7::int[], $8, $9, $10, $11)`
)

var appendQueries = map[bool]string{false: appendQuery, true: appendKeyedQuery}

// globalPageQuery reads a page of the unfiltered global log.
const globalPageQuery = `SELECT ` + eventColumns + ` FROM idlog_global_page($1, $2) AS events`

// pageFunc reads the page after last (or the first page), appending its events to buf.
type pageFunc func(ctx context.Context, last eventstore.Event, first bool, buf []eventstore.Event) ([]eventstore.Event, error)

// pages turns a page query into an iterator. After a page that is not full it asks done whether
// the read is over; if not, it waits for an append through this store or the poll interval, and
// reads again. done is asked before the page is read, so it never ends a read early.
//
// position is where a read of the global log starts (0 for a stream). While appends through this
// store are known to lie beyond what the read has seen, it looks again after a short, doubling
// pause rather than the poll interval, up to heldBackPause: they are held back by an older
// transaction that is about to end, and whose end no notification announces. exact says that the
// read is unfiltered, so it does reach every appended position.
func (s *Store) pages(ctx context.Context, position uint64, exact bool, page pageFunc, done func(context.Context) (bool, error)) iter.Seq2[eventstore.Event, error] {
	return func(yield func(eventstore.Event, error) bool) {
		var last eventstore.Event
		var rows []eventstore.Event
		first := true
		const minPause = time.Millisecond
		pause := minPause
		for {
			if s.closed.Load() {
				yield(eventstore.Event{}, eventstore.ErrClosed)
				return
			}
			if err := ctx.Err(); err != nil {
				yield(eventstore.Event{}, err)
				return
			}
			wake := s.appended.Changed() // taken before the read, so an append during it is not missed
			over, err := false, error(nil)
			if done != nil {
				over, err = done(ctx)
			}
			if err == nil {
				// The page's slice is the last one's: its events were yielded by value.
				rows, err = page(ctx, last, first, rows[:0])
			}
			if err != nil {
				yield(eventstore.Event{}, s.readError(ctx, err))
				return
			}
			for _, e := range rows {
				if !yield(e, nil) {
					return
				}
				last, first = e, false
				position = e.GlobalPosition
			}
			clear(rows) // let the consumer's copies be the only references to the events' data
			if exact && len(rows) > 0 {
				raiseTo(&s.lastRead, position)
			}
			if len(rows) == s.opts.PageSize {
				continue
			}
			if over {
				return
			}
			wait := s.opts.PollInterval
			if done == nil && s.lastAppended.Load() <= position {
				// A live read with nothing known to be pending, with Replicas: every append, of
				// any replica, wakes it (a notification, or watchHead if one was lost).
				wait = idleWait * s.opts.PollInterval
			}
			if len(rows) > 0 {
				pause = minPause
			}
			if s.lastAppended.Load() > position {
				// A filtered read may never reach lastAppended (the newest events may not match):
				// it keeps to the poll interval rather than look every heldBackPause for ever.
				most := wait
				if exact {
					most = min(wait, heldBackPause)
				}
				wait, pause = min(pause, most), min(2*pause, most)
			}
			timer := time.NewTimer(wait)
			select {
			case <-wake:
			case <-timer.C:
			case <-ctx.Done():
			case <-s.done:
			}
			timer.Stop()
		}
	}
}

// TransactionEnded implements eventstore.HorizonWaker: while appended events are known that no
// read has returned yet, the live reads look again at once.
func (s *Store) TransactionEnded() {
	if s.lastAppended.Load() > s.lastRead.Load() {
		s.appended.Notify()
	}
}

// idleWait is how many poll intervals a live read waits, with Replicas, when it knows of no
// event it has not read: watchHead wakes it when the log grows, so its own poll is a last net.
const idleWait = 12

// neverWithHead is Subscribe's done: never over. With Replicas it is nil, which tells pages that
// watchHead wakes the read, so that an idle subscriber does not poll.
func neverWithHead(replicas bool) func(context.Context) (bool, error) {
	if replicas {
		return nil
	}
	return never
}

// heldBackPause bounds the pause of a read that knows of appended events it cannot see yet (see
// pages), whatever the poll interval: only a read with work due pays for it.
const heldBackPause = 100 * time.Millisecond

// raiseTo sets v to pos unless it already holds a higher position.
func raiseTo(v *atomic.Uint64, pos uint64) {
	for cur := v.Load(); cur < pos; cur = v.Load() {
		if v.CompareAndSwap(cur, pos) {
			return
		}
	}
}

func (s *Store) readError(ctx context.Context, err error) error {
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case s.closed.Load():
		return eventstore.ErrClosed
	}
	return fmt.Errorf("postgres: read events: %w", err)
}

// Checkpoint implements eventstore.Checkpoints.
func (s *Store) Checkpoint(ctx context.Context, name string) (uint64, error) {
	if s.closed.Load() {
		return 0, eventstore.ErrClosed
	}
	var pos int64
	err := s.db.GetContext(ctx, &pos, `SELECT position FROM checkpoints WHERE name = $1`, name)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("postgres: checkpoint %q: %w", name, err)
	}
	return uint64(pos), nil
}

// SetCheckpoint implements eventstore.Checkpoints. Under a follower's fencing token (see
// eventstore.Checkpoints) the check and the write share one transaction: the lease row, locked
// for share, cannot change hands between them.
func (s *Store) SetCheckpoint(ctx context.Context, name string, pos uint64) error {
	if s.closed.Load() {
		return eventstore.ErrClosed
	}
	const upsert = `INSERT INTO checkpoints (name, position, updated_at) VALUES ($1, $2, now())
		ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position, updated_at = EXCLUDED.updated_at`
	if _, fenced := follower.TokenFrom(ctx); !fenced {
		if _, err := s.db.ExecContext(ctx, upsert, name, int64(pos)); err != nil {
			return fmt.Errorf("postgres: set checkpoint %q: %w", name, err)
		}
		return nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("postgres: set checkpoint %q: begin: %w", name, err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after commit
	if err := lease.Check(ctx, tx, migrations.Postgres); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, upsert, name, int64(pos)); err != nil {
		return fmt.Errorf("postgres: set checkpoint %q: %w", name, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("postgres: set checkpoint %q: commit: %w", name, err)
	}
	return nil
}

var _ eventstore.KeyOwners = (*Store)(nil)

// KeyOwner implements eventstore.KeyOwners.
func (s *Store) KeyOwner(ctx context.Context, key string) (string, error) {
	if s.closed.Load() {
		return "", eventstore.ErrClosed
	}
	var stream string
	err := s.stmts.GetContext(ctx, nil, &stream, `SELECT stream_id FROM unique_keys WHERE key = $1`, key)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("%w: %q", eventstore.ErrKeyNotClaimed, key)
	}
	if err != nil {
		return "", fmt.Errorf("postgres: key owner %q: %w", key, err)
	}
	return stream, nil
}
