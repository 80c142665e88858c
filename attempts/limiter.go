package attempts

import (
	"cmp"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/idlog/idlog/internal/sqlitebusy"
	"github.com/idlog/idlog/internal/stmtcache"
	"github.com/idlog/idlog/migrations"
)

// sweepEvery is how often a Limiter deletes the counters and marks that expired.
const sweepEvery = time.Minute

// Options configure New.
type Options struct {
	// DB is the event store's database, with the attempt tables (migrations 00070). On SQLite it
	// must be a writable pool (projections.OpenSQLite opens one); the event store's own pool is
	// read-only.
	DB      *sqlx.DB
	Dialect migrations.Dialect
	// Metrics receives idlog_attempts_total{kind,outcome}; nil registers nothing.
	Metrics prometheus.Registerer
}

// Limiter keeps the counters in the database. It is safe for concurrent use, by many processes.
type Limiter struct {
	db        *sqlx.DB
	stmts     *stmtcache.Cache // every statement of Try, Done and Succeeded, prepared once
	dialect   migrations.Dialect
	attempts  *prometheus.CounterVec
	lastSweep atomic.Int64
}

// New returns the limiter over o.DB. A nil DB is a wiring mistake and panics.
func New(o Options) (*Limiter, error) {
	if o.DB == nil {
		panic("attempts: New needs a database")
	}
	if o.Dialect != migrations.Postgres && o.Dialect != migrations.SQLite {
		return nil, fmt.Errorf("attempts: dialect %q is not postgres or sqlite", o.Dialect)
	}
	l := &Limiter{db: o.DB, stmts: stmtcache.New(o.DB), dialect: o.Dialect, attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "idlog", Name: "attempts_total",
		Help: "Attempts at secrets and code requests by kind and outcome: failed (a wrong secret, or a request counted), throttled (refused before any check).",
	}, []string{"kind", "outcome"})}
	if o.Metrics != nil {
		if err := o.Metrics.Register(l.attempts); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, fmt.Errorf("attempts: metrics: %w", err)
			}
			l.attempts = are.ExistingCollector.(*prometheus.CounterVec)
		}
	}
	return l, nil
}

// The outcomes of idlog_attempts_total.
const (
	OutcomeFailed    = "failed"
	OutcomeThrottled = "throttled"
)

// hashKey keeps personal data (logins, addresses) out of the table.
func hashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

func (l *Limiter) q(query string) string {
	if l.dialect == migrations.Postgres {
		return sqlx.Rebind(sqlx.DOLLAR, query)
	}
	return query
}

type hashed struct {
	Counter
	key string
}

// sorted hashes the keys and orders them, so concurrent Try calls lock rows in one order (no
// deadlock on PostgreSQL). A key given twice counts once.
func sorted(counters []Counter) []hashed {
	out := make([]hashed, 0, len(counters))
	for _, c := range counters {
		out = append(out, hashed{c, hashKey(c.Key)})
	}
	slices.SortFunc(out, func(a, b hashed) int { return cmp.Compare(a.key, b.key) })
	return slices.CompactFunc(out, func(a, b hashed) bool { return a.key == b.key })
}

// Try admits one attempt against every counter, unless one of them must still wait: then it
// admits nothing and returns the longest wait. An admitted attempt is pending until Done, and
// counts meanwhile as a failure of this moment.
//
// One statement counts the attempt on every counter and returns them as they now stand; the
// counters then decide, and only when one must wait does a second statement give the attempt
// back. Meanwhile it counts, which only makes concurrent attempts stricter, never looser: no two
// can both pass on counts that leave room for one. (Before, a transaction locked and read each
// counter, then counted: four round trips for one counter, against one now.) A refused attempt
// still starts the counters' forgetting again, as an admitted one does.
func (l *Limiter) Try(ctx context.Context, now time.Time, counters ...Counter) (time.Duration, error) {
	if len(counters) == 0 {
		return 0, nil
	}
	l.sweep(ctx, now)
	cs := sorted(counters)
	nowUS := now.UnixMicro()
	// Rows in key order: PostgreSQL locks them in that order (no deadlock).
	query := `INSERT INTO attempt_counters (key, failures, pending, last_failure, expires_at) VALUES ` +
		strings.Repeat("(?, 0, 1, 0, ?), ", len(cs)-1) + `(?, 0, 1, 0, ?)
		ON CONFLICT (key) DO UPDATE SET
			failures = CASE WHEN attempt_counters.expires_at <= ? THEN 0 ELSE attempt_counters.failures END,
			pending = CASE WHEN attempt_counters.expires_at <= ? THEN 1 ELSE attempt_counters.pending + 1 END,
			expires_at = excluded.expires_at
		RETURNING key, failures, pending, last_failure`
	if l.dialect == migrations.Postgres {
		query += asyncCommit
	}
	args := make([]any, 0, 2*len(cs)+2)
	for _, c := range cs {
		args = append(args, c.key, now.Add(c.Policy.Forget).UnixMicro())
	}
	args = append(args, nowUS, nowUS)
	var counted []countedRow
	if err := l.write(ctx, func(tx *sqlx.Tx) error {
		counted = counted[:0] // a try again on SQLite starts over
		return l.stmts.SelectContext(ctx, tx, &counted, l.q(query), args...)
	}); err != nil {
		return 0, fmt.Errorf("attempts: count: %w", err)
	}
	var wait time.Duration
	var waiting []string
	for _, c := range cs {
		i := slices.IndexFunc(counted, func(r countedRow) bool { return r.Key == c.key })
		if i < 0 {
			return 0, fmt.Errorf("attempts: count: no %s counter returned", c.Kind)
		}
		r := counted[i]
		pending := r.Pending - 1 // those before this attempt
		n := r.Failures + pending
		w := time.UnixMicro(r.LastFailure).Add(c.Policy.Wait(n)).Sub(now)
		if pending > 0 {
			w = max(w, c.Policy.Wait(n)) // the pending attempts may fail now
		}
		if n > 0 && w > 0 {
			waiting = append(waiting, c.Kind)
			wait = max(wait, w)
		}
	}
	if wait == 0 {
		return 0, nil
	}
	for _, k := range waiting {
		l.attempts.WithLabelValues(k, OutcomeThrottled).Inc()
	}
	// A statement each: one row locked at a time, so none waits on another in a cycle.
	err := l.write(ctx, func(tx *sqlx.Tx) error {
		for _, c := range cs {
			if _, err := l.stmts.ExecContext(ctx, tx, l.q(`UPDATE attempt_counters SET pending = pending - 1 WHERE key = ? AND pending > 0`), c.key); err != nil {
				return fmt.Errorf("attempts: give back a refused %s attempt: %w", c.Kind, err)
			}
		}
		return nil
	})
	return wait, err
}

// countedRow is a counter as Try's statement left it.
type countedRow struct {
	Key         string `db:"key"`
	Failures    int64  `db:"failures"`
	Pending     int64  `db:"pending"`
	LastFailure int64  `db:"last_failure"`
	Async       string `db:"async"` // asyncCommit's column, on PostgreSQL
}

// asyncCommit ends the RETURNING or select list of a counting statement on PostgreSQL: its
// transaction commits without waiting for the WAL to reach the disk. A crash of the database
// may then lose the counts of its last moments (the attempts of a few hundred milliseconds,
// pending ones or proven ones); failures (Done) are still written durably. It saves a disk
// flush, which the database makes one caller at a time, on every sign-in's two counting
// statements. Set in the statement, it costs no round trip.
const asyncCommit = `, set_config('synchronous_commit', 'off', true) AS async`

// Done ends an attempt Try admitted, at now. A failed attempt counts as a failure from now on
// (and shows in the metrics); any other (the secret was right, or never checked) is forgotten.
func (l *Limiter) Done(ctx context.Context, now time.Time, failed bool, counters ...Counter) error {
	cs := sorted(counters)
	if failed {
		for _, c := range cs {
			l.attempts.WithLabelValues(c.Kind, OutcomeFailed).Inc()
		}
	}
	return l.write(ctx, func(tx *sqlx.Tx) error {
		for _, c := range cs {
			var err error
			if failed {
				_, err = l.stmts.ExecContext(ctx, tx, l.q(`UPDATE attempt_counters SET failures = failures + 1,
					pending = CASE WHEN pending > 0 THEN pending - 1 ELSE 0 END, last_failure = ?, expires_at = ? WHERE key = ?`),
					now.UnixMicro(), now.Add(c.Policy.Forget).UnixMicro(), c.key)
			} else {
				_, err = l.stmts.ExecContext(ctx, tx, l.q(`UPDATE attempt_counters SET pending = pending - 1 WHERE key = ? AND pending > 0`), c.key)
			}
			if err != nil {
				return fmt.Errorf("attempts: end a %s attempt: %w", c.Kind, err)
			}
		}
		return nil
	})
}

// Reset starts the counters again from zero: the owner proved the secret.
func (l *Limiter) Reset(ctx context.Context, counters ...Counter) error {
	return l.write(ctx, func(tx *sqlx.Tx) error {
		for _, c := range sorted(counters) {
			if _, err := l.stmts.ExecContext(ctx, tx, l.q(`DELETE FROM attempt_counters WHERE key = ?`), c.key); err != nil {
				return fmt.Errorf("attempts: reset a %s counter: %w", c.Kind, err)
			}
		}
		return nil
	})
}

// Succeeded ends the attempts of a proven secret at once, in one transaction (on PostgreSQL one
// round trip, migration 00290): the counters of done are given back, as Done(ctx, now, false,
// done...) does, those of reset start again from zero, as Reset does (a counter in both is
// reset), and trust, unless empty, is trusted until then, as Trust does. Rows are locked in the
// order Try locks them, so concurrent calls of both cannot deadlock.
func (l *Limiter) Succeeded(ctx context.Context, done, reset []Counter, trust string, until time.Time) error {
	resets := map[string]bool{}
	for _, c := range reset {
		resets[hashKey(c.Key)] = true
	}
	cs := sorted(append(slices.Clone(done), reset...))
	keys := make([]string, len(cs))
	del := make([]bool, len(cs))
	for i, c := range cs {
		keys[i], del[i] = c.key, resets[c.key]
	}
	var mark any // NULL: nothing to trust
	if trust != "" {
		mark = hashKey(trust)
	}
	if l.dialect == migrations.Postgres {
		if _, err := l.stmts.ExecContext(ctx, nil, `SELECT idlog_attempts_succeeded($1, $2, $3, $4)`+asyncCommit,
			pq.StringArray(keys), pq.BoolArray(del), mark, until.UnixMicro()); err != nil {
			return fmt.Errorf("attempts: end a proven attempt: %w", err)
		}
		return nil
	}
	err := l.write(ctx, func(tx *sqlx.Tx) error {
		for i, k := range keys {
			q := `UPDATE attempt_counters SET pending = pending - 1 WHERE key = ? AND pending > 0`
			if del[i] {
				q = `DELETE FROM attempt_counters WHERE key = ?`
			}
			if _, err := l.stmts.ExecContext(ctx, tx, q, k); err != nil {
				return err
			}
		}
		if mark != nil {
			if _, err := l.stmts.ExecContext(ctx, tx, `INSERT INTO attempt_marks (key, until) VALUES (?, ?)
				ON CONFLICT (key) DO UPDATE SET until = excluded.until`, mark, until.UnixMicro()); err != nil {
				return fmt.Errorf("trust: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("attempts: end a proven attempt: %w", err)
	}
	return nil
}

// Trust marks key as trusted until then (a later mark replaces an earlier one).
func (l *Limiter) Trust(ctx context.Context, key string, until time.Time) error {
	err := l.write(ctx, func(tx *sqlx.Tx) error {
		_, err := l.stmts.ExecContext(ctx, tx, l.q(`INSERT INTO attempt_marks (key, until) VALUES (?, ?)
			ON CONFLICT (key) DO UPDATE SET until = excluded.until`), hashKey(key), until.UnixMicro())
		return err
	})
	if err != nil {
		return fmt.Errorf("attempts: trust: %w", err)
	}
	return nil
}

// Trusted reports whether key is marked trusted at now.
func (l *Limiter) Trusted(ctx context.Context, key string, now time.Time) (bool, error) {
	var until int64
	err := l.stmts.QueryRowxContext(ctx, nil, l.q(`SELECT until FROM attempt_marks WHERE key = ?`), hashKey(key)).Scan(&until)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("attempts: trusted: %w", err)
	}
	return until > now.UnixMicro(), nil
}

// sweep deletes expired counters and marks, at most once per sweepEvery per process. A failure
// only delays it: expired rows count as zero anyway.
func (l *Limiter) sweep(ctx context.Context, now time.Time) {
	last := l.lastSweep.Load()
	if now.UnixNano()-last < int64(sweepEvery) || !l.lastSweep.CompareAndSwap(last, now.UnixNano()) {
		return
	}
	us := now.UnixMicro()
	_ = l.write(ctx, func(tx *sqlx.Tx) error {
		_, err := l.stmts.ExecContext(ctx, tx, l.q(`DELETE FROM attempt_counters WHERE expires_at < ?`), us)
		if err == nil {
			_, err = l.stmts.ExecContext(ctx, tx, l.q(`DELETE FROM attempt_marks WHERE until < ?`), us)
		}
		return err
	})
}

// write runs f, which writes through tx, in a transaction of its own on SQLite: one that waits
// for the file's lock a fraction of a millisecond at a time (package sqlitebusy), and runs f
// again from the start if it lost the lock midway. SQLite's busy handler slept a millisecond and
// more each time the event store's writer or a projector held the lock, on every sign-in. On
// PostgreSQL tx is nil: each statement commits on its own, as a row lock is all it waits for.
func (l *Limiter) write(ctx context.Context, f func(tx *sqlx.Tx) error) error {
	if l.dialect == migrations.Postgres {
		return f(nil)
	}
	return sqlitebusy.InTx(ctx, l.db, sqlitebusy.Timeout, f)
}
