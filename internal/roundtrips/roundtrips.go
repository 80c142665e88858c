// Package roundtrips counts the round trips a request makes to PostgreSQL: the times the client
// sends something and waits for the server's answer, as lib/pq does them on the wire. Tests use it
// to bound what a route costs the database, whatever else the process does meanwhile: round trips
// are counted for the context that made them, not for the pool.
package roundtrips

import (
	"context"
	"database/sql/driver"
	"errors"
	"net"
	"sync/atomic"
	"time"

	"github.com/lib/pq"
)

// Counter holds the round trips made with a context from Track.
type Counter struct{ n atomic.Int64 }

// N is the number of round trips counted so far.
func (c *Counter) N() int64 { return c.n.Load() }

type counterKey struct{}

// Track returns ctx carrying a new counter: the round trips of every statement run with it (or
// with a context derived from it) through a Connector's pool are added to it.
func Track(ctx context.Context) (context.Context, *Counter) {
	c := &Counter{}
	return context.WithValue(ctx, counterKey{}, c), c
}

func add(ctx context.Context, n int64) {
	if c, ok := ctx.Value(counterKey{}).(*Counter); ok && n > 0 {
		c.n.Add(n)
	}
}

// Connector returns a connector over dsn whose connections count their round trips. Connecting
// is not counted: a pool that is warm does not connect.
func Connector(dsn string) (driver.Connector, error) {
	c, err := pq.NewConnector(dsn)
	if err != nil {
		return nil, err
	}
	c.Dialer(dialer{})
	return connector{c}, nil
}

// wire is a connection that counts a round trip at each write that follows a read (or is the
// first): lib/pq sends its messages, then reads until the server is done answering.
type wire struct {
	net.Conn
	trips atomic.Int64
	read  atomic.Bool // the last thing done was a read
}

func (w *wire) Write(p []byte) (int, error) {
	if w.read.Swap(false) || w.trips.Load() == 0 {
		w.trips.Add(1)
	}
	return w.Conn.Write(p)
}

func (w *wire) Read(p []byte) (int, error) {
	w.read.Store(true)
	return w.Conn.Read(p)
}

type wireKey struct{}

// dialer hands the connection it dials to the connector that asked, through the context.
type dialer struct{}

func (dialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, network, address)
	if err != nil {
		return nil, err
	}
	w := &wire{Conn: c}
	if slot, ok := ctx.Value(wireKey{}).(**wire); ok {
		*slot = w
	}
	return w, nil
}

func (d dialer) Dial(network, address string) (net.Conn, error) {
	return d.DialContext(context.Background(), network, address)
}

func (d dialer) DialTimeout(network, address string, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return d.DialContext(ctx, network, address)
}

type connector struct{ pq *pq.Connector }

func (c connector) Driver() driver.Driver { return c.pq.Driver() }

func (c connector) Connect(ctx context.Context) (driver.Conn, error) {
	var w *wire
	inner, err := c.pq.Connect(context.WithValue(ctx, wireKey{}, &w))
	if err != nil {
		return nil, err
	}
	if w == nil {
		_ = inner.Close()
		return nil, errNoWire
	}
	return &conn{inner: inner, w: w}, nil
}

var errOldInterface = errors.New("roundtrips: use the context methods")

var errNoWire = errors.New("roundtrips: lib/pq did not dial through the counting dialer")

// conn is a lib/pq connection that adds the round trips of each call to its context's counter.
type conn struct {
	inner driver.Conn
	w     *wire
}

// count runs f and adds the round trips it made to ctx's counter.
func (c *conn) count(ctx context.Context, f func()) {
	before := c.w.trips.Load()
	f()
	add(ctx, c.w.trips.Load()-before)
}

func (c *conn) Prepare(q string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), q)
}

func (c *conn) PrepareContext(ctx context.Context, q string) (s driver.Stmt, err error) {
	c.count(ctx, func() { s, err = c.inner.(driver.ConnPrepareContext).PrepareContext(ctx, q) })
	if err != nil {
		return nil, err
	}
	return &stmt{inner: s, c: c}, nil
}

func (c *conn) Close() error { return c.inner.Close() }

func (c *conn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

func (c *conn) BeginTx(ctx context.Context, o driver.TxOptions) (t driver.Tx, err error) {
	c.count(ctx, func() { t, err = c.inner.(driver.ConnBeginTx).BeginTx(ctx, o) })
	if err != nil {
		return nil, err
	}
	return &tx{inner: t, c: c, ctx: ctx}, nil
}

func (c *conn) QueryContext(ctx context.Context, q string, args []driver.NamedValue) (r driver.Rows, err error) {
	c.count(ctx, func() { r, err = c.inner.(driver.QueryerContext).QueryContext(ctx, q, args) })
	return r, err
}

func (c *conn) ExecContext(ctx context.Context, q string, args []driver.NamedValue) (r driver.Result, err error) {
	c.count(ctx, func() { r, err = c.inner.(driver.ExecerContext).ExecContext(ctx, q, args) })
	return r, err
}

func (c *conn) Ping(ctx context.Context) (err error) {
	c.count(ctx, func() { err = c.inner.(driver.Pinger).Ping(ctx) })
	return err
}

func (c *conn) CheckNamedValue(nv *driver.NamedValue) error {
	return c.inner.(driver.NamedValueChecker).CheckNamedValue(nv)
}

func (c *conn) ResetSession(ctx context.Context) error {
	return c.inner.(driver.SessionResetter).ResetSession(ctx)
}

func (c *conn) IsValid() bool { return c.inner.(driver.Validator).IsValid() }

type stmt struct {
	inner driver.Stmt
	c     *conn
}

func (s *stmt) Close() error  { return s.inner.Close() }
func (s *stmt) NumInput() int { return s.inner.NumInput() }

// Exec and Query complete driver.Stmt; database/sql calls ExecContext and QueryContext.
func (s *stmt) Exec(args []driver.Value) (driver.Result, error) {
	return nil, errOldInterface
}

func (s *stmt) Query(args []driver.Value) (driver.Rows, error) {
	return nil, errOldInterface
}

func (s *stmt) QueryContext(ctx context.Context, args []driver.NamedValue) (r driver.Rows, err error) {
	s.c.count(ctx, func() { r, err = s.inner.(driver.StmtQueryContext).QueryContext(ctx, args) })
	return r, err
}

func (s *stmt) ExecContext(ctx context.Context, args []driver.NamedValue) (r driver.Result, err error) {
	s.c.count(ctx, func() { r, err = s.inner.(driver.StmtExecContext).ExecContext(ctx, args) })
	return r, err
}

// tx counts its commit or rollback for the context it began with.
type tx struct {
	inner driver.Tx
	c     *conn
	ctx   context.Context
}

func (t *tx) Commit() (err error) {
	t.c.count(t.ctx, func() { err = t.inner.Commit() })
	return err
}

func (t *tx) Rollback() (err error) {
	t.c.count(t.ctx, func() { err = t.inner.Rollback() })
	return err
}
