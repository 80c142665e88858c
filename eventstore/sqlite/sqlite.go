// Package sqlite is the embedded event store of idlog: the event log in one SQLite file, through
// the pure-Go driver modernc.org/sqlite (no cgo).
//
// SQLite admits one writer at a time; peers that let every goroutine write surface "database is
// locked" under load. Here one writer goroutine owns the only write connection: Append queues a
// request and waits, and the writer commits every queued request in one transaction (one fsync for
// many appends), each inside its own SAVEPOINT so a failing append undoes only itself. Because
// writes are serialised, the global position (INTEGER PRIMARY KEY AUTOINCREMENT) is commit order,
// and a follower can never pass a position below which an event might still commit. Reads use a
// separate pool of connections, which WAL lets run beside the writer.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/migrations"
)

// DefaultPollInterval is how often a subscriber re-checks the file when Options.PollInterval is 0.
const DefaultPollInterval = 200 * time.Millisecond

// ErrInvalidOptions: Open was given options it cannot use. The error names the bad value.
var ErrInvalidOptions = errors.New("eventstore/sqlite: invalid options")

const (
	// busyTimeoutMS bounds how long a connection waits for a lock held by another process (a
	// second idlog binary on the same file). Within this process writes never contend.
	busyTimeoutMS = 5000
	// queueLen is how many appends may wait for the writer before Append blocks on the queue.
	queueLen = 1024
	// maxBatch bounds the appends (and maxBatchEvents their events) one group commit takes, so a
	// burst cannot grow a transaction, and the wait of the appends in it, without limit.
	maxBatch       = 512
	maxBatchEvents = 20000
)

// Options configure Open.
type Options struct {
	// Path of the database file. Its parent directory is created if missing.
	Path string
	// PollInterval is how often a subscriber re-checks the file for rows that other processes
	// wrote; appends of this process wake subscribers at once. 0 means DefaultPollInterval.
	PollInterval time.Duration
	// BeforeCommit, a test hook, is called inside the write transaction after an append's rows are
	// written and before the commit.
	BeforeCommit func(ctx context.Context, a eventstore.Append)
}

func (o Options) validate() (Options, error) {
	switch {
	case o.Path == "":
		return o, fmt.Errorf("%w: Path is empty", ErrInvalidOptions)
	case o.Path == ":memory:" || strings.HasPrefix(o.Path, "file:"):
		// An in-memory database exists once per connection, and the writer and the readers use
		// different connections; a URI would bypass the pragmas Open sets.
		return o, fmt.Errorf("%w: Path (%q) must be a file path, not an in-memory database or URI", ErrInvalidOptions, o.Path)
	case o.PollInterval < 0:
		return o, fmt.Errorf("%w: PollInterval (%v) cannot be negative", ErrInvalidOptions, o.PollInterval)
	}
	if o.PollInterval == 0 {
		o.PollInterval = DefaultPollInterval
	}
	return o, nil
}

// Store is the SQLite event store. It implements eventstore.Store and eventstore.Checkpoints and is
// safe for concurrent use.
type Store struct {
	opts Options
	wdb  *sql.DB // one connection, owned by the writer goroutine
	w    *writer
	rdb  *sqlx.DB // read pool (query_only)
	// readStream is ReadStream's query, prepared once per read connection: a user's stream is
	// read on every request, and preparing SQL costs SQLite more than running it.
	readStream *sql.Stmt

	mu      sync.RWMutex // guards closed and sending on reqs against Close
	closed  bool
	reqs    chan *writeRequest
	closing chan struct{} // closed when Close starts
	done    chan struct{} // closed when the writer has drained the queue and stopped

	committed eventstore.Signal // rung after every commit: wakes subscribers

	// watching counts the live subscriptions; while there are any, one goroutine (watchHead)
	// reads the end of the log every PollInterval for them all.
	watchMu  sync.Mutex
	watching int
	watcher  bool
}

var (
	_ eventstore.Store       = (*Store)(nil)
	_ eventstore.Checkpoints = (*Store)(nil)
)

// Open opens (creating if needed) the event store file at o.Path, migrates its schema, and starts
// the writer.
func Open(ctx context.Context, o Options) (*Store, error) {
	o, err := o.validate()
	if err != nil {
		return nil, err
	}
	path, err := filepath.Abs(o.Path)
	if err != nil {
		return nil, fmt.Errorf("%w: Path (%q): %v", ErrInvalidOptions, o.Path, err)
	}
	// 0700: the log holds personal data (emails, IPs) of every user.
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("eventstore/sqlite: create directory of %q: %w", path, err)
	}
	if err := createPrivate(path); err != nil {
		return nil, fmt.Errorf("eventstore/sqlite: create %q: %w", path, err)
	}

	wdb, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		return nil, fmt.Errorf("eventstore/sqlite: open %q: %w", path, err)
	}
	wdb.SetMaxOpenConns(1)
	wdb.SetMaxIdleConns(1)
	wdb.SetConnMaxLifetime(0)
	wdb.SetConnMaxIdleTime(0)
	s, err := open(ctx, o, path, wdb)
	if err != nil {
		_ = wdb.Close()
		return nil, err
	}
	return s, nil
}

// createPrivate creates the database file 0600 whatever the umask, if it does not exist yet.
// SQLite gives the -wal and -shm files it creates the mode of the database file.
func createPrivate(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func open(ctx context.Context, o Options, path string, wdb *sql.DB) (*Store, error) {
	// journal_mode=WAL is silently refused on some file systems; without it readers would block
	// the writer, so refuse to run rather than degrade.
	var mode string
	if err := wdb.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return nil, fmt.Errorf("eventstore/sqlite: open %q: %w", path, err)
	}
	if !strings.EqualFold(mode, "wal") {
		return nil, fmt.Errorf("eventstore/sqlite: %q: journal_mode is %q, want wal (is the file system local?)", path, mode)
	}
	if err := migrations.Up(ctx, wdb, migrations.SQLite); err != nil {
		return nil, fmt.Errorf("eventstore/sqlite: %q: %w", path, err)
	}
	conn, err := wdb.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("eventstore/sqlite: open %q: %w", path, err)
	}
	w, err := newWriter(ctx, conn)
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("eventstore/sqlite: open %q: %w", path, err)
	}

	rdb, err := sqlx.Open("sqlite", dsn(path, true))
	if err != nil {
		w.close()
		return nil, fmt.Errorf("eventstore/sqlite: open %q: %w", path, err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	rdb.SetMaxOpenConns(n)
	rdb.SetMaxIdleConns(n)
	rdb.SetConnMaxIdleTime(5 * time.Minute)
	if err := rdb.PingContext(ctx); err != nil {
		w.close()
		_ = rdb.Close()
		return nil, fmt.Errorf("eventstore/sqlite: open %q for reading: %w", path, err)
	}
	readStream, err := rdb.PrepareContext(ctx, readStreamSQL)
	if err != nil {
		w.close()
		_ = rdb.Close()
		return nil, fmt.Errorf("eventstore/sqlite: open %q for reading: %w", path, err)
	}

	s := &Store{
		opts:       o,
		wdb:        wdb,
		w:          w,
		rdb:        rdb,
		readStream: readStream,
		reqs:       make(chan *writeRequest, queueLen),
		closing:    make(chan struct{}),
		done:       make(chan struct{}),
	}
	go s.runWriter()
	return s, nil
}

// dsn builds the driver's name for path. The path is escaped as a file: URI so that '?', '#' or
// '%' in it cannot be taken for parameters.
func dsn(path string, readOnly bool) string {
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(path)}
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeoutMS))
	q.Add("_pragma", "foreign_keys(1)")
	// FULL: in WAL mode NORMAL may lose the last commits on power loss; an acknowledged append
	// must survive.
	q.Add("_pragma", "synchronous(FULL)")
	if readOnly {
		q.Add("_pragma", "query_only(1)")
	} else {
		// journal_mode is persistent in the file: the writer, opened first, sets it for everyone.
		q.Add("_pragma", "journal_mode(WAL)")
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// DB returns the pool of read-only connections to the file. Others may use it for reads; writes
// through it fail (query_only), as they would race the writer.
func (s *Store) DB() *sqlx.DB { return s.rdb }

// Close lets the writer commit what is already queued, stops it and closes the connections.
// Appends, reads and subscriptions after or during Close end with eventstore.ErrClosed. Closing
// again returns nil.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.closing)
	close(s.reqs)
	s.mu.Unlock()

	<-s.done
	return errors.Join(s.w.close(), s.wdb.Close(), s.readStream.Close(), s.rdb.Close())
}

func (s *Store) isClosed() bool {
	select {
	case <-s.closing:
		return true
	default:
		return false
	}
}

func errClosed(op string) error {
	return fmt.Errorf("eventstore/sqlite: %s: %w", op, eventstore.ErrClosed)
}
