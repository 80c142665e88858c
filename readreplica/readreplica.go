// Package readreplica sends read-model queries to a PostgreSQL streaming replica (a hot standby)
// while keeping read-your-writes: a Router knows the primary's WAL position of the last write this
// process answered, reads the replica's replay position, and lets a read use the replica only once
// the replica has replayed that far. A replica that lags past a bounded wait, or fails, is passed
// over: the read goes to the primary, and a metric and a log line say so.
package readreplica

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/lib/pq"
	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of Options.
const (
	// DefaultMaxWait bounds how long a read waits for the replica to replay a write before it reads
	// the primary. A healthy streaming replica replays within milliseconds.
	DefaultMaxWait = 250 * time.Millisecond
	// DefaultDownFor is how long reads skip a replica that failed before they try it again.
	DefaultDownFor = 2 * time.Second
	// DefaultQueryTimeout bounds a query on the replica.
	DefaultQueryTimeout = 5 * time.Second
)

// Poll is how often the replay position is read while someone waits for it: one small query on
// the replica for all the waiting requests of the process.
const Poll = 2 * time.Millisecond

// Errors of New.
var (
	// ErrNotStandby: the read database is not in recovery, so it is no streaming replica (the
	// primary itself, say) and has no replay position to wait on.
	ErrNotStandby = errors.New("readreplica: the read database is not a standby (pg_is_in_recovery() is false)")
	// ErrOtherCluster: the read database is a standby of another PostgreSQL cluster than the
	// primary (their system identifiers differ).
	ErrOtherCluster = errors.New("readreplica: the read database replicates another cluster than the primary")
)

// Options configure a Router.
type Options struct {
	// Primary is the database the projectors commit to. Required.
	Primary *sql.DB
	// Replica is a streaming standby of Primary: one server, not a pool of several, whose replay
	// positions would differ. Required.
	Replica *sql.DB
	// MaxWait bounds the wait of a read, and of a write's answer, for the replica to replay a
	// write. 0 means DefaultMaxWait.
	MaxWait time.Duration
	// DownFor is how long reads go to the primary after the replica failed. 0 means DefaultDownFor.
	DownFor time.Duration
	// QueryTimeout bounds a query on the replica (and half the time its context has left, if it
	// has a deadline): past it the replica counts as down and the query runs on the primary. Keep
	// it well under the request's own bound. 0 means DefaultQueryTimeout.
	QueryTimeout time.Duration
	// Logger receives the replica's comings and goings. Nil discards them.
	Logger *slog.Logger
	// Metrics, when set, receives the router's Prometheus metrics.
	Metrics prometheus.Registerer
}

func (o *Options) validate() error {
	switch {
	case o.Primary == nil:
		return errors.New("readreplica: Options.Primary is nil")
	case o.Replica == nil:
		return errors.New("readreplica: Options.Replica is nil")
	case o.MaxWait < 0 || o.DownFor < 0 || o.QueryTimeout < 0:
		return fmt.Errorf("readreplica: max wait (%v), down for (%v) and query timeout (%v) cannot be negative", o.MaxWait, o.DownFor, o.QueryTimeout)
	}
	if o.QueryTimeout == 0 {
		o.QueryTimeout = DefaultQueryTimeout
	}
	if o.MaxWait == 0 {
		o.MaxWait = DefaultMaxWait
	}
	if o.DownFor == 0 {
		o.DownFor = DefaultDownFor
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Reasons a read went to the primary (the fallbacks metric's reason label).
const (
	ReasonLag  = "lag"  // the replica had not replayed the last write within MaxWait
	ReasonDown = "down" // the replica did not answer, or failed the query
)

// Router decides, read by read, whether the replica may answer. It is safe for concurrent use.
type Router struct {
	o Options

	required  atomic.Uint64 // the primary's WAL position of the newest write answered here
	replayed  atomic.Uint64 // the replica's replay position, as last read
	verified  atomic.Bool   // the replica was found to be a standby of the primary
	downUntil atomic.Int64  // unix nanoseconds before which reads skip the replica
	lagLogged atomic.Int64  // unix nanoseconds of the last "lags" log line
	lagging   atomic.Bool   // the last wait ran out: the replica is behind by more than MaxWait

	mu       sync.Mutex
	moved    chan struct{} // closed and replaced when replayed moves or the replica fails
	watchers int           // waits in progress; the poller runs while there are any
	polling  bool          // the poller runs
	down     bool          // for the log: the last state logged was "down"

	reads     *prometheus.CounterVec
	fallbacks *prometheus.CounterVec
	waits     prometheus.Histogram
}

// New checks the options and returns a router. It checks, if the replica answers, that it is a
// standby of the primary (ErrNotStandby, ErrOtherCluster); a replica that does not answer yet is
// checked when it does, and until then reads go to the primary.
func New(ctx context.Context, o Options) (*Router, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	r := &Router{o: o, moved: make(chan struct{})}
	r.reads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "idlog", Subsystem: "read_replica", Name: "reads_total",
		Help: "Read-model reads by the database that answered them: replica or primary.",
	}, []string{"database"})
	r.fallbacks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "idlog", Subsystem: "read_replica", Name: "fallbacks_total",
		Help: "Reads sent to the primary instead of the replica, by reason: lag (it had not replayed the last write in time) or down (it failed).",
	}, []string{"reason"})
	r.waits = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "idlog", Subsystem: "read_replica", Name: "wait_seconds",
		Help:    "How long reads and write answers waited for the replica to replay a write.",
		Buckets: []float64{.0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1},
	})
	for _, db := range []string{"replica", "primary"} {
		r.reads.WithLabelValues(db)
	}
	for _, reason := range []string{ReasonLag, ReasonDown} {
		r.fallbacks.WithLabelValues(reason)
	}
	if o.Metrics != nil {
		for _, c := range []prometheus.Collector{r.reads, r.fallbacks, r.waits} {
			if err := o.Metrics.Register(c); err != nil {
				return nil, fmt.Errorf("readreplica: metrics: %w", err)
			}
		}
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := r.poll(cctx); err != nil {
		if errors.Is(err, ErrNotStandby) || errors.Is(err, ErrOtherCluster) {
			return nil, err
		}
		o.Logger.Warn("the read replica does not answer; reads go to the primary until it does", "error", err)
		r.downUntil.Store(time.Now().Add(o.DownFor).UnixNano())
		r.down = true
	}
	return r, nil
}

// Written records that a write's effect on the read models has committed on the primary (call it
// once the projections show the write) and waits, up to MaxWait or ctx's end, for the replica to
// replay it, so that a read after the answer finds the write on the replica, here or on another
// replica of idlog. A replica that does not catch up in time is no error: this process's reads go
// to the primary until it has.
func (r *Router) Written(ctx context.Context) error {
	// A transactional logical message gets the statement a transaction id, so its commit is
	// flushed (the projectors commit asynchronously) and the replica is sent everything up to
	// it. The message's position is after every commit visible when the statement began.
	// Not cut by the request's deadline: a position left unknown sends every read to the primary.
	ectx, ecancel := context.WithTimeout(context.WithoutCancel(ctx), emitTimeout)
	defer ecancel()
	var lsn int64
	if err := r.o.Primary.QueryRowContext(ectx, `SELECT pg_wal_lsn_diff(pg_logical_emit_message(true, 'idlog.read_your_writes', ''), '0/0')::bigint`).Scan(&lsn); err != nil {
		// Unknown position: nobody can tell when the replica holds the write.
		r.markDown("the primary's WAL position of a write is unknown; reads go to the primary", err)
		return fmt.Errorf("readreplica: %w", err)
	}
	for {
		cur := r.required.Load()
		if uint64(lsn) <= cur || r.required.CompareAndSwap(cur, uint64(lsn)) {
			break
		}
	}
	wctx, cancel := context.WithTimeout(ctx, r.maxWait())
	defer cancel()
	r.waited(ctx, r.wait(wctx, uint64(lsn)))
	return nil
}

// emitTimeout bounds the statement that reads a write's WAL position on the primary.
const emitTimeout = 2 * time.Second

// lagWait is how long waits are while the replica lags: long enough to see it catch up, short
// enough that no request pays MaxWait while it stays behind.
const lagWait = 2 * Poll

// maxWait is how long the next wait for the replica may take.
func (r *Router) maxWait() time.Duration {
	if r.lagging.Load() {
		return min(lagWait, r.o.MaxWait)
	}
	return r.o.MaxWait
}

// waited notes how a wait for the replica ended: a wait that ran out (ctx still alive) means the
// replica lags, one that was met that it does not.
func (r *Router) waited(ctx context.Context, err error) {
	switch {
	case err == nil:
		if r.lagging.CompareAndSwap(true, false) {
			r.o.Logger.Info("the read replica caught up; reads go to it again")
		}
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
		r.lagging.Store(true)
	}
}

// useReplica reports whether a read may go to the replica now: it has replayed the newest write
// answered here, at once or within MaxWait. Otherwise the read goes to the primary, counted as a
// fallback.
func (r *Router) useReplica(ctx context.Context) bool {
	need := r.required.Load()
	if r.verified.Load() && !r.isDown() && r.replayed.Load() >= need {
		return true
	}
	wctx, cancel := context.WithTimeout(ctx, r.maxWait())
	defer cancel()
	err := r.wait(wctx, need)
	r.waited(ctx, err)
	if err == nil {
		return true
	}
	reason := ReasonLag
	if errors.Is(err, errDown) {
		reason = ReasonDown
	} else if now := time.Now(); ctx.Err() == nil && now.UnixNano() > r.lagLogged.Load()+int64(r.o.DownFor) {
		// Once per DownFor at most: a replica that stays behind would flood the log.
		r.lagLogged.Store(now.UnixNano())
		r.o.Logger.Warn("the read replica lags; reading the primary", "wait", r.o.MaxWait,
			"behind_bytes", int64(need)-int64(r.replayed.Load()))
	}
	r.fallbacks.WithLabelValues(reason).Inc()
	return false
}

// Failed tells whether err, returned by a query on the replica, is the replica's failure rather
// than the query's (a lost connection, a query cancelled by recovery, a standby shutting down, a
// deadline of the replica's own while ctx's runs). If
// it is, reads skip the replica for DownFor and the caller should read the primary (Read does).
func (r *Router) Failed(ctx context.Context, err error) bool {
	if err == nil || ctx.Err() != nil || !replicaFailure(err) {
		return false
	}
	r.markDown(replicaFailed, err)
	r.fallbacks.WithLabelValues(ReasonDown).Inc()
	return true
}

// Read runs query on the replica's view when the replica may answer, else on the primary's; a
// query the replica fails, or does not answer in time (Options.QueryTimeout), is run again on the
// primary. A nil router reads the primary.
func Read[V, T any](ctx context.Context, r *Router, primary, replica V, query func(context.Context, V) (T, error)) (T, error) {
	if r == nil {
		return query(ctx, primary)
	}
	if r.useReplica(ctx) {
		if t, ok, err := onReplica(ctx, r, replica, query); ok {
			r.reads.WithLabelValues("replica").Inc()
			return t, err
		}
	}
	r.reads.WithLabelValues("primary").Inc()
	return query(ctx, primary)
}

// onReplica runs query on the replica; ok is false if the replica failed it or did not answer in
// time (QueryTimeout, or half the time ctx has left). A replica that hangs (frozen, cut off without a reset) is left behind: lib/pq returns
// only once the server answers the cancel, so the query's goroutine finishes on its own later.
func onReplica[V, T any](ctx context.Context, r *Router, replica V, query func(context.Context, V) (T, error)) (t T, ok bool, err error) {
	timeout := r.o.QueryTimeout
	if d, has := ctx.Deadline(); has {
		timeout = min(timeout, time.Until(d)/2)
	}
	qctx, cancel := context.WithTimeout(ctx, timeout)
	type answer struct {
		t   T
		err error
	}
	done := make(chan answer, 1)
	go func() {
		defer cancel()
		t, err := query(qctx, replica)
		done <- answer{t, err}
	}()
	select {
	case a := <-done:
		if r.Failed(ctx, a.err) {
			return t, false, nil
		}
		return a.t, true, a.err
	case <-qctx.Done():
		if ctx.Err() != nil {
			return t, true, ctx.Err() // the caller gave up
		}
		r.markDown(replicaFailed, fmt.Errorf("no answer in %v", timeout))
		r.fallbacks.WithLabelValues(ReasonDown).Inc()
		return t, false, nil
	}
}

const replicaFailed = "the read replica failed; reads go to the primary"

// errDown: the replica failed recently, or failed to tell its replay position.
var errDown = errors.New("readreplica: the replica is down")

func (r *Router) isDown() bool { return time.Now().UnixNano() < r.downUntil.Load() }

func (r *Router) markDown(msg string, err error) {
	r.downUntil.Store(time.Now().Add(r.o.DownFor).UnixNano())
	r.mu.Lock()
	logIt := !r.down
	r.down = true
	r.wakeLocked()
	r.mu.Unlock()
	if logIt {
		r.o.Logger.Warn(msg, "for", r.o.DownFor, "error", err)
	}
}

// wait returns once the replica has replayed lsn, or errDown, or ctx's error.
func (r *Router) wait(ctx context.Context, lsn uint64) error {
	start := time.Now()
	defer func() { r.waits.Observe(time.Since(start).Seconds()) }()
	if r.isDown() {
		return errDown
	}
	r.mu.Lock()
	r.watchers++
	if !r.polling {
		r.polling = true
		go r.pollWhileWatched()
	}
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.watchers--
		r.mu.Unlock()
	}()
	for {
		r.mu.Lock()
		wake := r.moved
		r.mu.Unlock()
		if r.isDown() {
			return errDown
		}
		if r.verified.Load() && r.replayed.Load() >= lsn {
			return nil
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// pollWhileWatched reads the replay position every Poll while anyone waits.
func (r *Router) pollWhileWatched() {
	t := time.NewTicker(Poll)
	defer t.Stop()
	for {
		r.mu.Lock()
		if r.watchers == 0 {
			r.polling = false
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()
		if !r.isDown() {
			ctx, cancel := context.WithTimeout(context.Background(), max(r.o.MaxWait, time.Second))
			if err := r.poll(ctx); err != nil {
				r.markDown(replicaFailed, err)
			}
			cancel()
		}
		<-t.C
	}
}

// poll checks the replica once, if it was never checked, and reads its replay position.
func (r *Router) poll(ctx context.Context) error {
	if !r.verified.Load() {
		if err := r.verify(ctx); err != nil {
			return err
		}
		r.verified.Store(true)
	}
	var lsn sql.NullInt64
	if err := r.o.Replica.QueryRowContext(ctx, `SELECT pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0')::bigint`).Scan(&lsn); err != nil {
		return fmt.Errorf("read the replica's replay position: %w", err)
	}
	if !lsn.Valid {
		return ErrNotStandby // promoted meanwhile: it no longer follows the primary
	}
	moved := false
	for {
		cur := r.replayed.Load()
		if uint64(lsn.Int64) <= cur {
			break
		}
		if r.replayed.CompareAndSwap(cur, uint64(lsn.Int64)) {
			moved = true
			break
		}
	}
	r.mu.Lock()
	back := r.down
	r.down = false
	if moved || back {
		r.wakeLocked()
	}
	r.mu.Unlock()
	if back {
		r.o.Logger.Info("the read replica answers again; reads go to it once it has replayed the last write")
	}
	return nil
}

// verify checks that the replica is a standby of the primary.
func (r *Router) verify(ctx context.Context) error {
	var recovering bool
	var replicaID, primaryID int64
	if err := r.o.Replica.QueryRowContext(ctx, `SELECT pg_is_in_recovery(), system_identifier FROM pg_control_system()`).Scan(&recovering, &replicaID); err != nil {
		return fmt.Errorf("check the read replica: %w", err)
	}
	if !recovering {
		return ErrNotStandby
	}
	if err := r.o.Primary.QueryRowContext(ctx, `SELECT system_identifier FROM pg_control_system()`).Scan(&primaryID); err != nil {
		return fmt.Errorf("check the primary: %w", err)
	}
	if replicaID != primaryID {
		return fmt.Errorf("%w (system identifiers %d and %d)", ErrOtherCluster, replicaID, primaryID)
	}
	return nil
}

func (r *Router) wakeLocked() {
	close(r.moved)
	r.moved = make(chan struct{})
}

// replicaFailure tells a failure of the replica (connection, recovery conflict, shutdown,
// resources) from an answer of the query (not found, a bad filter).
func replicaFailure(err error) bool {
	var pqErr *pq.Error
	if errors.As(err, &pqErr) {
		switch pqErr.Code.Class() {
		case "08", // connection exception
			"40", // transaction rollback: a query cancelled by a recovery conflict is 40001
			"53", // insufficient resources
			"57", // operator intervention: shutdown, cannot connect now
			"58": // system error
			return true
		}
		return false
	}
	var netErr net.Error
	return errors.As(err, &netErr) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, driver.ErrBadConn) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, ErrNotStandby) || errors.Is(err, sql.ErrConnDone)
}
