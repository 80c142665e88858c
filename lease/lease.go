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
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/idlog/idlog/follower"
	"github.com/idlog/idlog/migrations"
)

// DefaultTTL is how long a lease lasts without renewal: a standby takes over at most this long
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

// Leases implements follower.Lease on a database table.
type Leases struct {
	o Options
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
	return &Leases{o: o}, nil
}

// Owner names this process.
func (l *Leases) Owner() string { return l.o.Owner }

func (l *Leases) pg() bool { return l.o.Dialect == migrations.Postgres }

// take tries once to own name: a free or expired row. It returns the new token, or 0 and the
// current owner, in one statement (standbys run it every TTL/4).
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

// renew extends the lease; false if the token no longer owns it.
func (l *Leases) renew(ctx context.Context, name string, token int64) (bool, error) {
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

// Acquire implements follower.Lease: it tries every TTL/4 until it owns name.
func (l *Leases) Acquire(ctx context.Context, name string, standby func(owner string)) (*follower.Hold, error) {
	poll := l.o.TTL / 4
	last := "\x00"
	for {
		token, owner, err := l.take(ctx, name)
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
		t := time.NewTimer(poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// hold renews the lease every TTL/4 until it is lost or released. It counts as lost as soon as
// a renewal finds another token, or when no renewal succeeded for a TTL (the database is
// unreachable: another replica may own it by now).
func (l *Leases) hold(ctx context.Context, name string, token int64) *follower.Hold {
	hctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(l.o.TTL / 4)
		defer t.Stop()
		renewed := time.Now()
		for {
			select {
			case <-hctx.Done():
				return
			case <-t.C:
			}
			// A process that was stopped (SIGSTOP) wakes up here late: the lease may be gone.
			if time.Since(renewed) >= l.o.TTL {
				l.o.Logger.Warn("lease: not renewed in time; giving the follower up", "follower", name, "token", token)
				cancel()
				return
			}
			rctx, rcancel := context.WithTimeout(hctx, l.o.TTL/4)
			ok, err := l.renew(rctx, name, token)
			rcancel()
			switch {
			case err != nil:
				if hctx.Err() == nil {
					l.o.Logger.Warn("lease: renewal failed", "follower", name, "token", token, "error", err)
				}
			case !ok:
				cancel()
				return
			default:
				renewed = time.Now()
			}
		}
	}()
	var once sync.Once
	return &follower.Hold{Context: hctx, Token: token, Owner: l.o.Owner, Release: func() {
		once.Do(func() {
			cancel()
			<-done
			rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), l.o.TTL)
			defer rcancel()
			if err := l.release(rctx, name, token); err != nil {
				l.o.Logger.Warn("lease: release failed; a standby takes over when it expires", "follower", name, "error", err)
			}
		})
	}}
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
