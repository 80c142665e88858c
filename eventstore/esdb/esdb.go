// Package esdb is idlog's event store on EventStoreDB (github.com/EventStore/EventStore-Client-Go/v4).
//
// Mapping. A stream is the EventStoreDB stream Options.Namespace + stream id; our 1-based
// versions are EventStoreDB's 0-based revisions plus one. The global position is the event's
// commit position in $all: every event of a modern EventStoreDB write has a commit position of its
// own, and the server's single writer makes $all commit order, so a follower can never pass a
// position below which an event might still appear. Schema version, the envelope's metadata and
// recorded_at travel in EventStoreDB's user metadata; the data is stored byte for byte as JSON.
// recorded_at is taken once per append rather than read from EventStoreDB's created time, which
// the server stamps on each event separately, so that all events of an append share it.
//
// Retries. Our UUIDv7 ids are the EventStoreDB event ids, so the server itself turns a faithful
// retry with an exact expected version into a no-op. The store adds what the server leaves out:
// it reads the events back to return the original result, recognises a retry whose expected
// version is stale by finding its ids among the stream's last 1000 events (scanLimit; the search
// stops early at events recorded well before its UUIDv7 ids were made), and, because the server
// checks Any appends only against a cache, searches the same window before every Any append. A
// retry stores nothing, releases of unique keys included. EventStoreDB has no index of event ids
// across streams: an id reused in another stream, or deeper in the stream than that window, is
// not recognised as a duplicate.
//
// Unique keys. EventStoreDB cannot write two streams atomically, so a key is reserved in a stream
// of its own, ReservationStream(namespace, key), whose last event says who holds it: KeyClaimed
// {"stream": owner} or KeyReleased. Append claims its keys first (optimistic concurrency on the
// reservation stream makes exactly one of many racing claimers win), then writes the events, then
// releases; a claim that fails, or events that cannot be written, undo the claims made so far.
// Unlike on SQL, this is not one transaction: a process that dies between the claim and the
// events leaves the key held with no event of its owner, and one that dies between the events and
// a release leaves the key held by a stream that gave it up. A retry of the same append (same
// event ids) adopts its own earlier claims, so the usual command retry repairs the first case. An
// operator releases a stuck key by appending an event of type KeyReleased with data
// {"stream":"<owner>"} to ReservationStream(namespace, key), for instance from the EventStoreDB
// web UI or any client; the stream name is the only place the key appears, as a SHA-256.
//
// Server requirements: EventStoreDB 22.6 or later (stream reads must carry $all positions); the
// URL's user must be allowed to read $all (by default only admins are); events above 1 MiB need
// the server's MaxAppendSize raised. The client gives up for good when its rediscovery fails
// (maxDiscoverAttempts in the URL, 10 by default); the store then starts a new client on the next
// call.
package esdb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	esdbclient "github.com/EventStore/EventStore-Client-Go/v4/esdb"

	"github.com/idlog/idlog/eventstore"
)

// ErrInvalidOptions: Open was given options it cannot use. The error names the bad value, with
// any password in the URL masked.
var ErrInvalidOptions = errors.New("eventstore/esdb: invalid options")

// Options configure Open.
type Options struct {
	// URL is an EventStoreDB connection string, such as esdb://127.0.0.1:2113?tls=false.
	URL string
	// Namespace prefixes every stream this store writes, so several stores (tests, tenants) share
	// one server without seeing each other's events. Letters, digits, '.', '_', ':' and '-'.
	Namespace string
	// Logger receives the client library's own messages (at debug level) and the failures to
	// release a unique key after an append was stored. Nil means slog.Default().
	Logger *slog.Logger
}

const (
	// closeGrace bounds how long Close waits for cancelled calls to leave the client before it
	// shuts the client down (the client panics if a call races its shutdown).
	closeGrace = 5 * time.Second
	// compensationTimeout bounds the clean-up an append does after a failure, which runs even when
	// the caller's context has ended.
	compensationTimeout = 10 * time.Second
	minServerMajor      = 22
	minServerMinor      = 6
)

// Store is the EventStoreDB event store. It implements eventstore.Store and eventstore.Checkpoints
// and is safe for concurrent use.
type Store struct {
	ns   string
	conf *esdbclient.Configuration
	log  *slog.Logger
	// life ends when Close is called; every call's context is cancelled with it.
	life context.Context
	stop context.CancelFunc
	// capped remembers the checkpoint streams whose $maxCount this store has set.
	capped sync.Map

	mu       sync.Mutex
	client   *esdbclient.Client
	closed   bool
	inflight int
	idle     chan struct{} // closed when the last call leaves after Close
}

var (
	_ eventstore.Store       = (*Store)(nil)
	_ eventstore.Checkpoints = (*Store)(nil)
)

// Open connects to EventStoreDB and checks that the server is reachable and recent enough.
func Open(ctx context.Context, o Options) (*Store, error) {
	conf, err := o.configuration()
	if err != nil {
		return nil, err
	}
	logger := o.Logger
	if logger == nil {
		logger = slog.Default()
	}
	conf.Logger = clientLogger(logger)
	shown, _ := redactURL(o.URL)
	client, err := esdbclient.NewClient(conf)
	if err != nil {
		return nil, fmt.Errorf("%w: URL %q: %v", ErrInvalidOptions, shown, err)
	}
	if err := checkServer(ctx, client); err != nil {
		return nil, fmt.Errorf("eventstore/esdb: connect to %s: %w", shown, err)
	}
	life, stop := context.WithCancel(context.Background())
	return &Store{ns: o.Namespace, conf: conf, log: logger, life: life, stop: stop, client: client}, nil
}

func (o Options) configuration() (*esdbclient.Configuration, error) {
	if o.URL == "" {
		return nil, fmt.Errorf("%w: URL is empty", ErrInvalidOptions)
	}
	if err := validNamespace(o.Namespace); err != nil {
		return nil, err
	}
	conf, err := esdbclient.ParseConnectionString(o.URL)
	if err != nil {
		shown, password := redactURL(o.URL)
		// url.Error repeats the whole URL, password included: keep only its reason.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		reason := err.Error()
		if password != "" {
			reason = strings.ReplaceAll(reason, password, "xxxxx")
			if p, perr := url.PathUnescape(password); perr == nil && p != "" {
				reason = strings.ReplaceAll(reason, p, "xxxxx")
			}
		}
		return nil, fmt.Errorf("%w: URL %q: %s", ErrInvalidOptions, shown, reason)
	}
	return conf, nil
}

// redactURL returns raw with the password of its user info masked, and that password.
func redactURL(raw string) (shown, password string) {
	start := 0
	if i := strings.Index(raw, "://"); i >= 0 {
		start = i + len("://")
	}
	rest := raw[start:]
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	at := strings.LastIndex(rest[:end], "@")
	if at < 0 {
		return raw, ""
	}
	user, password, ok := strings.Cut(rest[:at], ":")
	if !ok {
		return raw, ""
	}
	return raw[:start] + user + ":xxxxx" + rest[at:], password
}

// checkServer waits, as long as ctx allows, for the client's first connection and the server's
// version. The client must succeed here: if its very first discovery fails it stops for good.
func checkServer(ctx context.Context, client *esdbclient.Client) error {
	type answer struct {
		v   *esdbclient.ServerVersion
		err error
	}
	got := make(chan answer, 1)
	go func() {
		v, err := client.GetServerVersion()
		got <- answer{v, err}
	}()
	select {
	case a := <-got:
		if a.err != nil {
			client.Close()
			return a.err
		}
		if a.v.Major < minServerMajor || a.v.Major == minServerMajor && a.v.Minor < minServerMinor {
			client.Close()
			return fmt.Errorf("server version %d.%d.%d is too old: stream reads must carry $all positions, which needs %d.%d or later",
				a.v.Major, a.v.Minor, a.v.Patch, minServerMajor, minServerMinor)
		}
		return nil
	case <-ctx.Done():
		// Close only once the pending call is out of the client: closing under it panics.
		go func() { <-got; client.Close() }()
		return ctx.Err()
	}
}

func clientLogger(l *slog.Logger) esdbclient.LoggingFunc {
	return func(level esdbclient.LogLevel, format string, args ...any) {
		// The store reports every failure to its caller; the client's own view is for debugging.
		l.Debug("eventstoredb client: "+fmt.Sprintf(format, args...), "client_level", level)
	}
}

// Close cancels the store's calls and subscriptions and closes the connection. It returns nil,
// also when called again.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.stop()
	var idle chan struct{}
	if s.inflight > 0 {
		s.idle = make(chan struct{})
		idle = s.idle
	}
	client := s.client
	s.mu.Unlock()
	if idle != nil {
		select {
		case <-idle:
		case <-time.After(closeGrace):
			// A call stuck inside the client (it waits for a connection without a context) would
			// panic if the client closed under it: leave the client to the process's end instead.
			s.log.Warn("eventstore/esdb: calls still running after Close; leaving the client open")
			return nil
		}
	}
	return client.Close()
}

// begin starts a call: it fails with ErrClosed after Close, and otherwise returns ctx cancelled
// also by Close, the client to use, and the function that ends the call.
func (s *Store) begin(ctx context.Context) (context.Context, *esdbclient.Client, func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, nil, err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, nil, nil, eventstore.ErrClosed
	}
	s.inflight++
	client := s.client
	s.mu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	unhook := context.AfterFunc(s.life, cancel)
	return ctx, client, func() {
		unhook()
		cancel()
		s.mu.Lock()
		s.inflight--
		if s.closed && s.inflight == 0 && s.idle != nil {
			close(s.idle)
			s.idle = nil
		}
		s.mu.Unlock()
	}, nil
}

func (s *Store) isClosed() bool { return s.life.Err() != nil }

// fail turns an error of a call into the error the caller sees: ErrClosed once the store is
// closed, ctx's error once ctx has ended, else err wrapped with what was being done.
func (s *Store) fail(ctx context.Context, client *esdbclient.Client, err error, format string, args ...any) error {
	if s.isClosed() {
		return eventstore.ErrClosed
	}
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	s.renew(client, err)
	return fmt.Errorf("eventstore/esdb: "+format+": %w", append(args, err)...)
}

// renew replaces a client that has stopped for good. The client gives up after its rediscovery
// attempts fail (a long outage) and then answers every call with "connection closed".
func (s *Store) renew(old *esdbclient.Client, err error) {
	var e *esdbclient.Error
	if !errors.As(err, &e) || e.Code() != esdbclient.ErrorCodeConnectionClosed {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.client != old {
		return
	}
	fresh, nerr := esdbclient.NewClient(s.conf)
	if nerr != nil {
		return
	}
	// The old client is dropped, not closed: its state machine has already stopped, and closing
	// it would panic calls that are still waiting on it.
	s.client = fresh
}

func isWrongExpectedVersion(err error) bool {
	var e *esdbclient.Error
	return errors.As(err, &e) && e.Code() == esdbclient.ErrorCodeWrongExpectedVersion
}

func isNotFound(err error) bool {
	var e *esdbclient.Error
	return errors.As(err, &e) && e.Code() == esdbclient.ErrorCodeResourceNotFound
}

// compensation returns a context for clean-up that must run even when the caller's has ended.
func compensation(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), compensationTimeout)
}
