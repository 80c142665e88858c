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

// DefaultTTL is how long a lease lasts without renewal. The owner renews it every TTL/3; a
// standby tries to take it when it would expire, so it takes over at most 4/3 TTL after the owner
// died or stalled.
const DefaultTTL = 3 * time.Second

// DefaultSQLiteTTL is DefaultTTL on SQLite, where one process owns everything (see
// Options.SQLiteTakeover): renewing every 20 s keeps an idle server's file quiet.
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

// Leases implements follower.Lease on a database table. Every TTL/3, one round renews all the
// leases this process holds in one statement, and, once they may have expired, tries to take all
// those it stands by for in one more: the cost of leases does not grow with the number of
// followers.
type Leases struct {
	o Options

	// renewing is held through a round of renewals, so that a release waits for it.
	renewing sync.Mutex
	mu       sync.Mutex
	held     map[string]*held
	waiting  map[*waiter]struct{}
	looping  bool      // rounds runs
	nextTake time.Time // when the leases waited for may have expired: the next round of takes
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
	return &Leases{o: o, held: map[string]*held{}, waiting: map[*waiter]struct{}{}}, nil
}

// Owner names this process.
func (l *Leases) Owner() string { return l.o.Owner }

func (l *Leases) pg() bool { return l.o.Dialect == migrations.Postgres }

// take tries once to own name: a free or expired row. It returns the new token, or 0 and the
// current owner, in one statement (SQLite's takeAll).
func (l *Leases) take(ctx context.Context, name string) (int64, string, error) {
	var q string
	var args []any
	if l.pg() {
		q = `WITH taken AS (
				INSERT INTO follower_leases AS l (name, owner, token, expires_at)
				VALUES ($1, $2, 1, now() + $3 * interval '1 millisecond')
				ON CONFLICT (name) DO UPDATE SET owner = EXCLUDED.owner, token = l.token + 1, expires_at = EXCLUDED.expires_at
				WHERE l.expires_at < now() RETURNING token)
			SELECT coalesce((SELECT token FROM taken), 0), coalesce((SELECT owner FROM follower_leases WHERE name = $1), '')`
		args = []any{name, l.o.Owner, l.o.TTL.Milliseconds()}
		var token int64
		var owner string
		if err := l.o.DB.QueryRowContext(ctx, q, args...).Scan(&token, &owner); err != nil {
			return 0, "", fmt.Errorf("lease: take %q: %w", name, err)
		}
		if token > 0 {
			return token, l.o.Owner, nil
		}
		return 0, owner, nil
	}
	// SQLite: one process uses the file, so it owns every follower at once, even if the row
	// names a process that died without giving it up.
	now := time.Now().UnixMilli()
	q = `INSERT INTO follower_leases AS l (name, owner, token, expires_at) VALUES (?, ?, 1, ?)
		ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, token = l.token + 1, expires_at = excluded.expires_at
		WHERE l.expires_at < ? OR ? RETURNING token`
	args = []any{name, l.o.Owner, now + l.o.TTL.Milliseconds(), now, l.o.SQLiteTakeover}
	var token int64
	err := l.o.DB.QueryRowContext(ctx, q, args...).Scan(&token)
	if err == nil {
		return token, l.o.Owner, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return 0, "", fmt.Errorf("lease: take %q: %w", name, err)
	}
	owner, _, err := l.current(ctx, name)
	return 0, owner, err
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

// Acquire implements follower.Lease. It tries at once; if another process owns name, it waits
// for this process's next round of takes (see Leases).
func (l *Leases) Acquire(ctx context.Context, name string, standby func(owner string)) (*follower.Hold, error) {
	got, err := l.takeAll(ctx, []string{name})
	if err != nil {
		return nil, err
	}
	r := got[name]
	if r.token > 0 {
		return l.hold(ctx, name, r.token), nil
	}
	if standby != nil {
		standby(r.owner)
	}
	w := &waiter{name: name, ctx: ctx, standby: standby, owner: r.owner, got: make(chan int64, 1)}
	l.mu.Lock()
	l.waiting[w] = struct{}{}
	// Whoever owns it renewed it at most a TTL ahead.
	if by := time.Now().Add(min(l.o.TTL, max(0, r.left))); l.nextTake.IsZero() || l.nextTake.After(by) {
		l.nextTake = by
	}
	l.startLocked()
	l.mu.Unlock()
	select {
	case token := <-w.got:
		return l.hold(ctx, name, token), nil
	case <-ctx.Done():
		l.mu.Lock()
		delete(l.waiting, w)
		l.mu.Unlock()
		select {
		case token := <-w.got: // taken just now: give it back
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.o.TTL)
			_ = l.release(rctx, name, token)
			cancel()
		default:
		}
		return nil, ctx.Err()
	}
}

// waiter is an Acquire standing by.
type waiter struct {
	name    string
	ctx     context.Context
	standby func(owner string)
	owner   string     // the owner last reported to standby
	got     chan int64 // the token, once taken
}

// held is a lease this process owns.
type held struct {
	token   int64
	renewed time.Time
	lost    context.CancelFunc
}

// hold registers a lease just taken, for the rounds to renew. It counts as lost as soon as a
// renewal finds another token, or when no renewal succeeded for a TTL (the database is
// unreachable, or this process was stopped: another replica may own it by now).
func (l *Leases) hold(ctx context.Context, name string, token int64) *follower.Hold {
	hctx, cancel := context.WithCancel(ctx)
	h := &held{token: token, renewed: time.Now(), lost: cancel}
	l.mu.Lock()
	l.held[name] = h
	l.startLocked()
	l.mu.Unlock()
	var once sync.Once
	return &follower.Hold{Context: hctx, Token: token, Owner: l.o.Owner, Release: func() {
		once.Do(func() {
			// After a round in progress: no renewal may land after the release.
			l.renewing.Lock()
			l.mu.Lock()
			if l.held[name] == h {
				delete(l.held, name)
			}
			l.mu.Unlock()
			l.renewing.Unlock()
			cancel()
			rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), l.o.TTL)
			defer rcancel()
			if err := l.release(rctx, name, token); err != nil {
				l.o.Logger.Warn("lease: release failed; a standby takes over when it expires", "follower", name, "error", err)
			}
		})
	}}
}

// startLocked starts the rounds unless they run. l.mu is held.
func (l *Leases) startLocked() {
	if !l.looping {
		l.looping = true
		go l.rounds()
	}
}

// rounds renews every lease this process holds, in one statement, every TTL/3, and tries to take
// every lease it waits for, in one more, at the first round after the soonest of them expires
// unless renewed, while it holds or waits for any. An idle owner then costs one transaction per
// round and an idle standby one per TTL, however many followers they run.
func (l *Leases) rounds() {
	t := time.NewTicker(l.o.TTL / 3)
	defer t.Stop()
	for range t.C {
		l.mu.Lock()
		if len(l.held) == 0 && len(l.waiting) == 0 {
			l.looping = false
			l.mu.Unlock()
			return
		}
		due := !time.Now().Before(l.nextTake)
		l.mu.Unlock()
		l.renewRound()
		if due {
			l.takeRound()
		}
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
		// A process that was stopped (SIGSTOP) wakes up here late: the lease may be gone.
		if time.Since(h.renewed) >= l.o.TTL {
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
	ctx, cancel := context.WithTimeout(context.Background(), l.o.TTL/3)
	renewed, err := l.renewAll(ctx, names, tokens)
	cancel()
	if err != nil {
		l.o.Logger.Warn("lease: renewal failed", "followers", names, "error", err)
		return
	}
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, name := range names {
		if l.held[name] != hs[i] {
			continue // released meanwhile
		}
		switch renewed[name] {
		case renewedNow:
			hs[i].renewed = now
			continue
		case renewBusy:
			continue // locked by a write of this process: the next round renews it
		}
		hs[i].lost() // another token owns it
		delete(l.held, name)
	}
}

func (l *Leases) takeRound() {
	l.mu.Lock()
	ws := make([]*waiter, 0, len(l.waiting))
	var names []string
	for w := range l.waiting {
		if w.ctx.Err() == nil {
			ws = append(ws, w)
			if !slices.Contains(names, w.name) {
				names = append(names, w.name)
			}
		}
	}
	l.mu.Unlock()
	if len(names) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), l.o.TTL/3)
	got, err := l.takeAll(ctx, names)
	cancel()
	if err != nil {
		l.o.Logger.Warn("lease: take failed", "followers", names, "error", err)
		return
	}
	soonest := l.o.TTL
	for _, r := range got {
		if r.token == 0 {
			soonest = max(0, min(soonest, r.left))
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.nextTake = time.Now().Add(soonest)
	for _, w := range ws {
		r := got[w.name]
		if _, still := l.waiting[w]; !still {
			if r.token > 0 { // its Acquire gave up meanwhile: give the lease back
				go func() {
					ctx, cancel := context.WithTimeout(context.Background(), l.o.TTL)
					defer cancel()
					_ = l.release(ctx, w.name, r.token)
				}()
			}
			continue
		}
		switch {
		case r.token > 0:
			delete(l.waiting, w)
			delete(got, w.name) // one owner per name, even in this process
			w.got <- r.token
		case r.owner != w.owner:
			w.owner = r.owner
			if w.standby != nil {
				w.standby(r.owner)
			}
		}
	}
}

type took struct {
	token int64
	owner string
	left  time.Duration // until the owner's lease expires, unless renewed (0 if unknown)
}

// The outcomes of a renewal, by lease.
const (
	renewLost  = iota // another token owns it
	renewedNow        // extended
	renewBusy         // still this token's, but a write holds its row (see Check): not extended
)

// renewAll extends the leases names[i] held with tokens[i], and returns the outcome for each.
// On PostgreSQL a row that a fenced write holds is skipped, not waited for: one long write must
// not hold up the renewal of every other lease.
func (l *Leases) renewAll(ctx context.Context, names []string, tokens []int64) (map[string]int, error) {
	var rows *sql.Rows
	var err error
	if l.pg() {
		rows, err = l.o.DB.QueryContext(ctx, `WITH h AS (SELECT * FROM unnest($2::text[], $3::bigint[]) AS h(name, token)),
			free AS (SELECT l.name FROM follower_leases l JOIN h ON l.name = h.name AND l.token = h.token
				ORDER BY l.name FOR NO KEY UPDATE OF l SKIP LOCKED),
			renewed AS (UPDATE follower_leases AS l SET expires_at = now() + $1 * interval '1 millisecond'
				FROM free WHERE l.name = free.name RETURNING l.name)
			SELECT h.name, CASE WHEN EXISTS (SELECT 1 FROM renewed r WHERE r.name = h.name) THEN 1
				WHEN EXISTS (SELECT 1 FROM follower_leases l WHERE l.name = h.name AND l.token = h.token) THEN 2
				ELSE 0 END
			FROM h`,
			l.o.TTL.Milliseconds(), pq.Array(names), pq.Array(tokens))
	} else {
		args := []any{time.Now().UnixMilli() + l.o.TTL.Milliseconds()}
		for i := range names {
			args = append(args, names[i], tokens[i])
		}
		rows, err = l.o.DB.QueryContext(ctx, `UPDATE follower_leases SET expires_at = ?
			WHERE (name, token) IN (VALUES `+strings.Repeat("(?, ?), ", len(names)-1)+`(?, ?)) RETURNING name`, args...)
	}
	if err != nil {
		return nil, fmt.Errorf("lease: renew: %w", err)
	}
	defer rows.Close()
	renewed := make(map[string]int, len(names))
	for rows.Next() {
		var name string
		outcome := renewedNow
		if l.pg() {
			err = rows.Scan(&name, &outcome)
		} else {
			err = rows.Scan(&name)
		}
		if err != nil {
			return nil, fmt.Errorf("lease: renew: %w", err)
		}
		renewed[name] = outcome
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("lease: renew: %w", err)
	}
	return renewed, nil
}

// takeAll tries once to own each of names (distinct): free or expired rows. For each it returns
// the new token, or 0 and the current owner. On PostgreSQL it is one statement; on SQLite, where
// one process owns everything and standbys are rare, one per name.
func (l *Leases) takeAll(ctx context.Context, names []string) (map[string]took, error) {
	out := make(map[string]took, len(names))
	if !l.pg() {
		for _, name := range names {
			token, owner, err := l.take(ctx, name)
			if err != nil {
				return nil, err
			}
			out[name] = took{token: token, owner: owner}
		}
		return out, nil
	}
	// Expired rows are locked in name order, skipping those a write of the old owner still holds
	// (a stalled transaction must not hold up the takeover of every other lease: the next round
	// takes it); names without a row are inserted.
	rows, err := l.o.DB.QueryContext(ctx, `WITH want AS (SELECT DISTINCT unnest($1::text[]) AS name),
		free AS (SELECT l.name FROM follower_leases l JOIN want w ON w.name = l.name WHERE l.expires_at < now()
			ORDER BY l.name FOR NO KEY UPDATE OF l SKIP LOCKED),
		moved AS (UPDATE follower_leases AS l SET owner = $2, token = l.token + 1, expires_at = now() + $3 * interval '1 millisecond'
			FROM free WHERE l.name = free.name RETURNING l.name, l.token),
		fresh AS (INSERT INTO follower_leases (name, owner, token, expires_at)
			SELECT name, $2, 1, now() + $3 * interval '1 millisecond' FROM want ORDER BY name
			ON CONFLICT (name) DO NOTHING RETURNING name, token),
		taken AS (SELECT name, token FROM moved UNION ALL SELECT name, token FROM fresh)
		SELECT w.name, coalesce(t.token, 0), coalesce(f.owner, ''),
			coalesce(extract(epoch FROM f.expires_at - now()) * 1000, 0)::bigint
		FROM want w LEFT JOIN taken t ON t.name = w.name LEFT JOIN follower_leases f ON f.name = w.name`,
		pq.Array(names), l.o.Owner, l.o.TTL.Milliseconds())
	if err != nil {
		return nil, fmt.Errorf("lease: take: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var r took
		var leftMS int64
		if err := rows.Scan(&name, &r.token, &r.owner, &leftMS); err != nil {
			return nil, fmt.Errorf("lease: take: %w", err)
		}
		if r.token > 0 {
			r.owner = l.o.Owner
		}
		r.left = time.Duration(leftMS) * time.Millisecond
		out[name] = r
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("lease: take: %w", err)
	}
	return out, nil
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
