// Package lease gives each follower of the log (a projector, the NATS relay, the audit sealer) one
// owner at a time across replicas, by a row in the database they share (table follower_leases,
// migration 00090): the owner renews it; when it dies or stalls, it expires and a standby takes it
// with a higher fencing token. The follower's writes check the token in their own transaction
// (Check), so a stalled owner that wakes up cannot write. On SQLite, one process owns everything,
// through the same code.
package lease

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/lib/pq"

	"github.com/idlog/idlog/follower"
	"github.com/idlog/idlog/migrations"
)

// DefaultTTL is how long a lease lasts without renewal: a standby takes over soon after this long
// after the owner died or stalled. The owner renews it every TTL/4.
const DefaultTTL = 3 * time.Second

// DefaultSQLiteTTL is DefaultTTL on SQLite, where one process owns everything (see
// Options.SQLiteTakeover): renewing every 15 s keeps an idle server's file quiet.
const DefaultSQLiteTTL = time.Minute

// ErrFenced: a write carried a fencing token that no longer owns its follower. It is
// follower.ErrLeaseLost, so the engine stands by instead of retrying.
var ErrFenced = follower.ErrLeaseLost

// Options configure a Leases.
type Options struct {
	// DB is the database the replicas share (migrated to 00090 or later).
	DB *sql.DB
	// Dialect of DB.
	Dialect migrations.Dialect
	// Owner names this process in status and logs. Default: host name, pid and a random suffix.
	Owner string
	// TTL: see DefaultTTL. 0 means DefaultTTL.
	TTL time.Duration
	// Logger receives renewal failures. Nil discards them.
	Logger *slog.Logger
	// SQLiteTakeover: on SQLite, Acquire takes a lease at once even if it has not expired, since
	// one process alone uses a SQLite file (a restart after a crash need not wait for the TTL).
	// Tests of failover leave it off.
	SQLiteTakeover bool
}

// Leases implements follower.Lease on a database table. Every TTL/4, one statement renews all
// the leases this process holds, and one reads all the leases it stands by for; it tries to take
// only those that expired or were released.
// The cost of leases does not grow with the number of followers.
type Leases struct {
	o Options

	// renewing is held through a round of renewals, so that a release waits for it.
	renewing  sync.Mutex
	mu        sync.Mutex
	held      map[string]*held
	watching  map[*watch]struct{}
	renewLoop bool // renewRounds runs
	watchLoop bool // watchRounds runs
	kick      chan struct{}

	stmtsMu sync.Mutex
	stmts   map[string]*sql.Stmt
}

// New checks o and returns the leases of this process. A nil DB is a wiring mistake and panics.
func New(o Options) (*Leases, error) {
	if o.DB == nil {
		panic("lease: New needs a database")
	}
	switch {
	case o.Dialect != migrations.Postgres && o.Dialect != migrations.SQLite:
		return nil, fmt.Errorf("lease: dialect %q (want postgres or sqlite)", o.Dialect)
	case o.TTL < 0 || (o.TTL > 0 && o.TTL < 100*time.Millisecond):
		return nil, fmt.Errorf("lease: TTL (%v) must be at least 100ms", o.TTL)
	}
	if o.TTL == 0 {
		o.TTL = DefaultTTL
		if o.Dialect == migrations.SQLite {
			o.TTL = DefaultSQLiteTTL
		}
	}
	if o.Owner == "" {
		host, _ := os.Hostname()
		o.Owner = host + "/" + strconv.Itoa(os.Getpid()) + "/" + uuid.NewString()[:8]
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Leases{o: o, held: map[string]*held{}, watching: map[*watch]struct{}{}, kick: make(chan struct{}, 1), stmts: map[string]*sql.Stmt{}}, nil
}

// Owner names this process.
func (l *Leases) Owner() string { return l.o.Owner }

func (l *Leases) pg() bool { return l.o.Dialect == migrations.Postgres }

// take tries once to own name: a free or expired row. It returns the new token, or 0, the current
// owner and how long until the owner's lease expires unless renewed, in one statement. A row that
// a write of the owner holds (see Check) is waited for, not skipped: when a stalled owner's
// transaction is ended (by PostgreSQL's idle timeout, or by Acquire: see endStalled), the take
// goes through at once.
func (l *Leases) take(ctx context.Context, name string) (int64, string, time.Duration, error) {
	if l.pg() {
		const q = `WITH taken AS (
				INSERT INTO follower_leases AS l (name, owner, token, expires_at)
				VALUES ($1, $2, 1, now() + $3 * interval '1 millisecond')
				ON CONFLICT (name) DO UPDATE SET owner = EXCLUDED.owner, token = l.token + 1, expires_at = EXCLUDED.expires_at
				WHERE l.expires_at < now() RETURNING token)
			SELECT coalesce((SELECT token FROM taken), 0), coalesce(f.owner, ''),
				coalesce(extract(epoch FROM f.expires_at - now()) * 1000, 0)::bigint
			FROM (SELECT 1) AS one LEFT JOIN follower_leases f ON f.name = $1`
		var token, leftMS int64
		var owner string
		// The wait for a held row is bounded by a lock_timeout of TTL/4, and Acquire tries again
		// at once: a take never holds a connection, nor fails, for as long as the stalled
		// transaction lasts, and still goes through as soon as that transaction ends.
		err := l.inTx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, fmt.Sprintf(`SET LOCAL lock_timeout = %d`, max(1, (l.o.TTL/4).Milliseconds()))); err != nil {
				return err
			}
			return tx.QueryRowContext(ctx, q, name, l.o.Owner, l.o.TTL.Milliseconds()).Scan(&token, &owner, &leftMS)
		})
		if pe, ok := errors.AsType[*pq.Error](err); ok && pe.Code == lockNotAvailable {
			return 0, "", 0, errRowHeld
		}
		if err != nil {
			return 0, "", 0, fmt.Errorf("lease: take %q: %w", name, err)
		}
		if token > 0 {
			return token, l.o.Owner, 0, nil
		}
		return 0, owner, time.Duration(leftMS) * time.Millisecond, nil
	}
	// SQLite: one process uses the file, so it owns every follower at once, even if the row
	// names a process that died without giving it up.
	now := time.Now().UnixMilli()
	const q = `INSERT INTO follower_leases AS l (name, owner, token, expires_at) VALUES (?, ?, 1, ?)
		ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, token = l.token + 1, expires_at = excluded.expires_at
		WHERE l.expires_at < ? OR ? RETURNING token`
	var token int64
	err := l.o.DB.QueryRowContext(ctx, q, name, l.o.Owner, now+l.o.TTL.Milliseconds(), now, l.o.SQLiteTakeover).Scan(&token)
	if err == nil {
		return token, l.o.Owner, 0, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return 0, "", 0, fmt.Errorf("lease: take %q: %w", name, err)
	}
	seen, err := l.peek(ctx, []string{name})
	if err != nil {
		return 0, "", 0, err
	}
	return 0, seen[name].owner, seen[name].left, nil
}

// lockNotAvailable is PostgreSQL's lock_not_available, the error of a lock_timeout.
const lockNotAvailable = "55P03"

// errRowHeld: a take found the lease row held by a write (a stalled owner's transaction, say)
// for longer than its lock_timeout.
var errRowHeld = errors.New("lease: the row is held by a write")

// endStalled ends, on PostgreSQL, the transaction that holds the row of name once the lease has
// expired, if that transaction has been idle for longer than the TTL: its process stopped sending
// anything (frozen by SIGSTOP, a stalled VM) in the middle of a fenced write, whose lock would
// otherwise keep every standby waiting until PostgreSQL's idle_in_transaction_session_timeout.
// Ending it rolls the write back, so the stalled owner cannot land it after the next owner's. A
// write that is running (not idle), or a row locked by several transactions at once, is waited for
// as before. It needs the right to signal the holder's backend (the same database role, or
// pg_signal_backend); without it, it logs and the standby waits.
func (l *Leases) endStalled(ctx context.Context, name string) {
	if !l.pg() {
		return
	}
	// A row's xmax is the id of the transaction that locks it (unless several share it); the
	// backend running that transaction shows it as backend_xid.
	rows, err := l.o.DB.QueryContext(ctx, `SELECT a.pid, pg_terminate_backend(a.pid)
		FROM follower_leases f JOIN pg_stat_activity a ON a.backend_xid = f.xmax
		WHERE f.name = $1 AND f.expires_at < now() AND a.pid <> pg_backend_pid()
			AND a.state IN ('idle in transaction', 'idle in transaction (aborted)')
			AND a.state_change < now() - $2 * interval '1 millisecond'`, name, l.o.TTL.Milliseconds())
	if err != nil {
		if ctx.Err() == nil {
			l.o.Logger.LogAttrs(ctx, slog.LevelWarn, "lease: a stalled owner's write holds the lease; waiting for it",
				slog.String("lease", name), slog.Any("error", err))
		}
		return
	}
	defer rows.Close()
	for rows.Next() {
		var pid int
		var ended bool
		if err := rows.Scan(&pid, &ended); err == nil && ended {
			l.o.Logger.LogAttrs(ctx, slog.LevelWarn, "lease: ended the transaction of a stalled owner holding the expired lease",
				slog.String("lease", name), slog.Int("pid", pid))
		}
	}
}

// inTx runs f in a transaction, committed if f succeeds.
func (l *Leases) inTx(ctx context.Context, f func(tx *sql.Tx) error) error {
	tx, err := l.o.DB.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := f(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

func (l *Leases) current(ctx context.Context, name string) (string, int64, error) {
	var owner string
	var token int64
	err := l.o.DB.QueryRowContext(ctx, l.rebind(`SELECT owner, token FROM follower_leases WHERE name = ?`), name).Scan(&owner, &token)
	if errors.Is(err, sql.ErrNoRows) {
		return "", 0, nil
	}
	if err != nil {
		return "", 0, fmt.Errorf("lease: read %q: %w", name, err)
	}
	return owner, token, nil
}

// Current returns the owner of name and its token as the database has them ("" if none).
func (l *Leases) Current(ctx context.Context, name string) (owner string, token int64, err error) {
	return l.current(ctx, name)
}

// seen is a lease row as a standby reads it.
type seen struct {
	owner string
	left  time.Duration // until it expires unless renewed; 0 or less: expired
}

// peek reads the rows of names without locking them; a name without a row is absent.
func (l *Leases) peek(ctx context.Context, names []string) (map[string]seen, error) {
	var rows *sql.Rows
	var err error
	if l.pg() {
		rows, err = l.prepared(ctx, peekPG).QueryContext(ctx, pq.Array(names))
	} else {
		args := make([]any, 0, len(names)+1)
		args = append(args, time.Now().UnixMilli())
		for _, n := range names {
			args = append(args, n)
		}
		rows, err = l.o.DB.QueryContext(ctx, `SELECT name, owner, expires_at - ? FROM follower_leases
			WHERE name IN (?`+strings.Repeat(", ?", len(names)-1)+`)`, args...)
	}
	if err != nil {
		return nil, fmt.Errorf("lease: read %q: %w", names, err)
	}
	defer rows.Close()
	out := make(map[string]seen, len(names))
	for rows.Next() {
		var name string
		var s seen
		var leftMS int64
		if err := rows.Scan(&name, &s.owner, &leftMS); err != nil {
			return nil, fmt.Errorf("lease: read %q: %w", names, err)
		}
		s.left = time.Duration(leftMS) * time.Millisecond
		out[name] = s
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("lease: read %q: %w", names, err)
	}
	return out, nil
}

// The statements an idle replica runs again and again, prepared once (see prepared).
const (
	renewAllPG = `WITH h AS (SELECT * FROM unnest($2::text[], $3::bigint[]) AS h(name, token)),
		free AS (SELECT l.name FROM follower_leases l JOIN h ON l.name = h.name AND l.token = h.token
			ORDER BY l.name FOR NO KEY UPDATE OF l SKIP LOCKED),
		renewed AS (UPDATE follower_leases AS l SET expires_at = now() + $1 * interval '1 millisecond'
			FROM free WHERE l.name = free.name RETURNING l.name)
		SELECT h.name, CASE WHEN EXISTS (SELECT 1 FROM renewed r WHERE r.name = h.name) THEN 1
			WHEN EXISTS (SELECT 1 FROM follower_leases l WHERE l.name = h.name AND l.token = h.token) THEN 2
			ELSE 0 END
		FROM h`
	peekPG = `SELECT name, owner, (extract(epoch FROM expires_at - now()) * 1000)::bigint
		FROM follower_leases WHERE name = ANY($1)`
)

// querier runs a query with arguments: a prepared statement or the database itself.
type querier interface {
	QueryContext(ctx context.Context, args ...any) (*sql.Rows, error)
}

type unprepared struct {
	db *sql.DB
	q  string
}

func (u unprepared) QueryContext(ctx context.Context, args ...any) (*sql.Rows, error) {
	return u.db.QueryContext(ctx, u.q, args...)
}

// prepared returns q prepared on l's database, once: lib/pq parses an unprepared query with
// arguments in a round trip of its own, which PostgreSQL counts as one more transaction, on
// every renewal. If it cannot be prepared, q runs unprepared.
func (l *Leases) prepared(ctx context.Context, q string) querier {
	l.stmtsMu.Lock()
	defer l.stmtsMu.Unlock()
	if st := l.stmts[q]; st != nil {
		return st
	}
	st, err := l.o.DB.PrepareContext(ctx, q)
	if err != nil {
		return unprepared{l.o.DB, q}
	}
	l.stmts[q] = st
	return st
}

// renewOne extends one lease, waiting for a write of this process that holds its row; false if
// the token no longer owns it.
func (l *Leases) renewOne(ctx context.Context, name string, token int64) (bool, error) {
	var res sql.Result
	var err error
	if l.pg() {
		res, err = l.o.DB.ExecContext(ctx, `UPDATE follower_leases SET expires_at = now() + $1 * interval '1 millisecond' WHERE name = $2 AND token = $3`,
			l.o.TTL.Milliseconds(), name, token)
	} else {
		res, err = l.o.DB.ExecContext(ctx, `UPDATE follower_leases SET expires_at = ? WHERE name = ? AND token = ?`,
			time.Now().UnixMilli()+l.o.TTL.Milliseconds(), name, token)
	}
	if err != nil {
		return false, fmt.Errorf("lease: renew %q: %w", name, err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// The outcomes of a renewal, by lease.
const (
	renewLost  = iota // another token owns it
	renewedNow        // extended
	renewBusy         // still this token's, but a write holds its row (see Check): not extended
)

// renewAll extends the leases names[i] held with tokens[i] in one statement, and returns the
// outcome for each. On PostgreSQL a row that a write of this process holds is passed over, not
// waited for, so that one long write does not hold up the renewal of every other lease; the
// caller renews those one by one.
func (l *Leases) renewAll(ctx context.Context, names []string, tokens []int64) (map[string]int, error) {
	var rows *sql.Rows
	var err error
	if l.pg() {
		rows, err = l.prepared(ctx, renewAllPG).QueryContext(ctx, l.o.TTL.Milliseconds(), pq.Array(names), pq.Array(tokens))
	} else {
		args := []any{time.Now().UnixMilli() + l.o.TTL.Milliseconds()}
		for i := range names {
			args = append(args, names[i], tokens[i])
		}
		rows, err = l.o.DB.QueryContext(ctx, `UPDATE follower_leases SET expires_at = ?
			WHERE (name, token) IN (VALUES `+strings.Repeat("(?, ?), ", len(names)-1)+`(?, ?)) RETURNING name, 1`, args...)
	}
	if err != nil {
		return nil, fmt.Errorf("lease: renew %q: %w", names, err)
	}
	defer rows.Close()
	out := make(map[string]int, len(names))
	for rows.Next() {
		var name string
		var outcome int
		if err := rows.Scan(&name, &outcome); err != nil {
			return nil, fmt.Errorf("lease: renew %q: %w", names, err)
		}
		out[name] = outcome
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("lease: renew %q: %w", names, err)
	}
	return out, nil // a name left out is renewLost
}

// release ends the lease at once, so a standby need not wait for it to expire.
func (l *Leases) release(ctx context.Context, name string, token int64) error {
	var err error
	if l.pg() {
		_, err = l.o.DB.ExecContext(ctx, `UPDATE follower_leases SET expires_at = now() - interval '1 second' WHERE name = $1 AND token = $2`, name, token)
	} else {
		_, err = l.o.DB.ExecContext(ctx, `UPDATE follower_leases SET expires_at = 0 WHERE name = ? AND token = ?`, name, token)
	}
	return err
}

// Acquire implements follower.Lease. It tries at once; while another process owns name, it
// waits until that owner's lease would expire unless renewed (see Leases), and tries again.
func (l *Leases) Acquire(ctx context.Context, name string, standby func(owner string)) (*follower.Hold, error) {
	last := "\x00"
	for {
		token, owner, left, err := l.take(ctx, name)
		if errors.Is(err, errRowHeld) {
			// It expired, but a write still holds it: end that write if its process has stalled,
			// else wait for it again.
			l.endStalled(ctx, name)
			continue
		}
		if err != nil {
			return nil, err
		}
		if token > 0 {
			return l.hold(ctx, name, token), nil
		}
		if owner != last {
			last = owner
			if standby != nil {
				standby(owner)
			}
		}
		if err := l.awaitExpiry(ctx, name, owner, left); err != nil {
			return nil, err
		}
	}
}

// watch is an Acquire standing by until its lease may be taken.
type watch struct {
	name  string
	owner string
	due   time.Time     // when to read the row again
	ready chan struct{} // closed when a take may succeed, or the owner changed
}

// awaitExpiry returns when the lease of name, held by owner, has expired, been released or
// changed hands, as this process's shared reads of the standby rows find (see watchRounds).
func (l *Leases) awaitExpiry(ctx context.Context, name, owner string, left time.Duration) error {
	w := &watch{name: name, owner: owner, due: time.Now().Add(l.nextLook(left)), ready: make(chan struct{})}
	l.mu.Lock()
	l.watching[w] = struct{}{}
	if !l.watchLoop {
		l.watchLoop = true
		go l.watchRounds()
	}
	l.mu.Unlock()
	select {
	case l.kick <- struct{}{}:
	default:
	}
	defer func() {
		l.mu.Lock()
		delete(l.watching, w)
		l.mu.Unlock()
	}()
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// nextLook is how long a standby waits before reading a lease that has left to run: until it
// would expire, but at most TTL/4, so that a lease given up early (Release, at a graceful
// shutdown) is taken as soon as a standby polling every TTL/4 took it before.
func (l *Leases) nextLook(left time.Duration) time.Duration {
	return min(max(left, time.Millisecond), l.o.TTL/4)
}

// watchRounds reads, in one statement, the rows of every lease this process stands by for once
// the soonest of them is due (see nextLook), and wakes the Acquire of each that has expired, been
// released or changed hands. An idle standby then costs one read every TTL/4, however many
// followers it stands by for.
func (l *Leases) watchRounds() {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		l.mu.Lock()
		if len(l.watching) == 0 {
			l.watchLoop = false
			l.mu.Unlock()
			return
		}
		now := time.Now()
		soonest := now.Add(l.o.TTL)
		for w := range l.watching {
			soonest = minTime(soonest, w.due)
		}
		// Once one is due, all are read: one statement reads them all, and the next round then
		// comes when the soonest of them may expire, not once per lease.
		var due []*watch
		var names []string
		if !soonest.After(now) {
			for w := range l.watching {
				due = append(due, w)
				if !slices.Contains(names, w.name) {
					names = append(names, w.name)
				}
			}
		}
		l.mu.Unlock()
		if len(names) > 0 {
			ctx, cancel := context.WithTimeout(context.Background(), l.o.TTL/4)
			rows, err := l.peek(ctx, names)
			cancel()
			l.mu.Lock()
			for _, w := range due {
				r, ok := rows[w.name]
				switch {
				case err != nil:
					w.due = now.Add(l.o.TTL / 4)
				case !ok || r.left <= 0 || r.owner != w.owner:
					if _, still := l.watching[w]; still {
						delete(l.watching, w)
						close(w.ready)
					}
				default:
					w.due = time.Now().Add(l.nextLook(r.left))
				}
			}
			l.mu.Unlock()
			if err != nil {
				l.o.Logger.Warn("lease: reading the leases stood by for failed", "followers", names, "error", err)
			}
			continue
		}
		t.Reset(time.Until(soonest))
		select {
		case <-t.C:
		case <-l.kick:
			t.Stop() // no stale tick after Stop or Reset since Go 1.23
		}
	}
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// held is a lease this process owns.
type held struct {
	token   int64
	ctx     context.Context
	renewed time.Time
	lost    context.CancelFunc
	busy    sync.WaitGroup // renewals of this lease alone, in flight
}

// hold registers a lease just taken for renewal (see renewRounds). It counts as lost as soon as
// a renewal finds another token, or when no renewal succeeded for a TTL (the database is
// unreachable, or this process was stopped: another replica may own it by now).
func (l *Leases) hold(ctx context.Context, name string, token int64) *follower.Hold {
	hctx, cancel := context.WithCancel(ctx)
	h := &held{token: token, ctx: hctx, renewed: time.Now(), lost: cancel}
	l.mu.Lock()
	l.held[name] = h
	if !l.renewLoop {
		l.renewLoop = true
		go l.renewRounds()
	}
	l.mu.Unlock()
	var once sync.Once
	return &follower.Hold{Context: hctx, Token: token, Owner: l.o.Owner, Release: func() {
		once.Do(func() {
			cancel()
			// After a round in progress: no renewal may land after the release.
			l.renewing.Lock()
			l.mu.Lock()
			if l.held[name] == h {
				delete(l.held, name)
			}
			l.mu.Unlock()
			l.renewing.Unlock()
			h.busy.Wait()
			rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), l.o.TTL)
			defer rcancel()
			if err := l.release(rctx, name, token); err != nil {
				l.o.Logger.Warn("lease: release failed; a standby takes over when it expires", "follower", name, "error", err)
			}
		})
	}}
}

// renewRounds renews every lease this process holds, in one statement, every TTL/4, while it
// holds any: an idle owner costs one statement a round, however many followers it runs.
func (l *Leases) renewRounds() {
	t := time.NewTicker(l.o.TTL / 4)
	defer t.Stop()
	for range t.C {
		l.mu.Lock()
		if len(l.held) == 0 {
			l.renewLoop = false
			l.mu.Unlock()
			return
		}
		l.mu.Unlock()
		l.renewRound()
	}
}

func (l *Leases) renewRound() {
	l.renewing.Lock()
	defer l.renewing.Unlock()
	l.mu.Lock()
	names := make([]string, 0, len(l.held))
	tokens := make([]int64, 0, len(l.held))
	hs := make([]*held, 0, len(l.held))
	for name, h := range l.held {
		switch {
		case h.ctx.Err() != nil:
			delete(l.held, name)
			continue
		case time.Since(h.renewed) >= l.o.TTL:
			// A process that was stopped (SIGSTOP) wakes up here late: the lease may be gone.
			l.o.Logger.Warn("lease: not renewed in time; giving the follower up", "follower", name, "token", h.token)
			h.lost()
			delete(l.held, name)
			continue
		}
		names, tokens, hs = append(names, name), append(tokens, h.token), append(hs, h)
	}
	l.mu.Unlock()
	if len(names) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), l.o.TTL/4)
	outcomes, err := l.renewAll(ctx, names, tokens)
	cancel()
	if err != nil {
		l.o.Logger.Warn("lease: renewal failed", "followers", names, "error", err)
		return
	}
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, name := range names {
		h := hs[i]
		if l.held[name] != h {
			continue // released meanwhile
		}
		switch outcomes[name] {
		case renewedNow:
			h.renewed = now
		case renewBusy:
			// A write of this process holds the row: wait for it, for this lease alone.
			h.busy.Add(1)
			go l.renewBusy(name, h)
		default:
			h.lost() // another token owns it
			delete(l.held, name)
		}
	}
}

// renewBusy renews one lease whose row a write of this process holds, waiting for the write.
func (l *Leases) renewBusy(name string, h *held) {
	defer h.busy.Done()
	ctx, cancel := context.WithTimeout(h.ctx, l.o.TTL/4)
	ok, err := l.renewOne(ctx, name, h.token)
	cancel()
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held[name] != h {
		return
	}
	switch {
	case err != nil:
		if h.ctx.Err() == nil {
			l.o.Logger.Warn("lease: renewal failed", "follower", name, "token", h.token, "error", err)
		}
	case !ok:
		h.lost()
		delete(l.held, name)
	default:
		h.renewed = now
	}
}

// Querier is a transaction (or anything) a fencing check runs in.
type Querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Check fences a write: inside the write's transaction tx, it returns ErrFenced unless the
// follower that ctx runs (follower.TokenFrom) still holds its token. On PostgreSQL it locks the
// lease row for share, so a takeover waits for this transaction, and this transaction, once a
// takeover committed, sees the new token. Without a token in ctx (no lease), it checks nothing.
func Check(ctx context.Context, tx Querier, d migrations.Dialect) error {
	f, ok := follower.TokenFrom(ctx)
	if !ok {
		return nil
	}
	q := `SELECT token FROM follower_leases WHERE name = ?`
	if d == migrations.Postgres {
		q = `SELECT token FROM follower_leases WHERE name = $1 FOR SHARE`
	}
	var token int64
	err := tx.QueryRowContext(ctx, q, f.Name).Scan(&token)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("lease: check %q: %w", f.Name, err)
	}
	if token != f.Token {
		return fmt.Errorf("%w: %q is held with token %d, this write carries %d", ErrFenced, f.Name, token, f.Token)
	}
	return nil
}

// CheckAll is Check for the writes of several followers in one transaction (ctxs, one per
// follower): one query for all of them. It returns ErrFenced if any of them lost its lease.
func CheckAll(ctxs []context.Context, tx interface {
	Querier
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}, d migrations.Dialect) error {
	want := map[string]int64{}
	names := []string{}
	for _, ctx := range ctxs {
		if f, ok := follower.TokenFrom(ctx); ok {
			if _, dup := want[f.Name]; !dup {
				names = append(names, f.Name)
			}
			want[f.Name] = f.Token
		}
	}
	switch {
	case len(names) == 0:
		return nil
	case len(names) == 1 || d != migrations.Postgres:
		for _, ctx := range ctxs {
			if err := Check(ctx, tx, d); err != nil {
				return err
			}
		}
		return nil
	}
	rows, err := tx.QueryContext(ctxs[0], `SELECT name, token FROM follower_leases WHERE name = ANY($1) FOR SHARE`, pq.Array(names))
	if err != nil {
		return fmt.Errorf("lease: check %d leases: %w", len(names), err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var token int64
		if err := rows.Scan(&name, &token); err != nil {
			return fmt.Errorf("lease: check %d leases: %w", len(names), err)
		}
		if token != want[name] {
			return fmt.Errorf("%w: %q is held with token %d, this write carries %d", ErrFenced, name, token, want[name])
		}
		delete(want, name)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("lease: check %d leases: %w", len(names), err)
	}
	for name, token := range want {
		return fmt.Errorf("%w: %q is held by nobody, this write carries %d", ErrFenced, name, token)
	}
	return nil
}

func (l *Leases) rebind(q string) string {
	if !l.pg() {
		return q
	}
	out := make([]byte, 0, len(q)+8)
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			out = append(out, '$')
			out = strconv.AppendInt(out, int64(n), 10)
			continue
		}
		out = append(out, q[i])
	}
	return string(out)
}
