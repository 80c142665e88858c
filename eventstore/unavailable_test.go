package eventstore_test

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/lib/pq"

	"github.com/idlog/idlog/eventstore"
)

func TestUnavailable(t *testing.T) {
	t.Parallel()
	cases := []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errors.New("syntax error"), false},
		{eventstore.ErrConcurrency, false},
		{context.Canceled, false},
		{&pq.Error{Code: "23505"}, false}, // unique violation: the caller's conflict
		{fmt.Errorf("read: %w", driver.ErrBadConn), true},
		{fmt.Errorf("read: %w", io.ErrUnexpectedEOF), true},
		{&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, true},
		{fmt.Errorf("write: %w", syscall.ECONNRESET), true},
		{fmt.Errorf("append: %w", &pq.Error{Code: "57P01", Message: "terminating connection due to administrator command"}), true},
		{&pq.Error{Code: "08006"}, true},
		// The session timeouts idlog sets: statement, lock, idle in transaction.
		{fmt.Errorf("append: %w", &pq.Error{Code: "57014", Message: "canceling statement due to statement timeout"}), true},
		{&pq.Error{Code: "55P03", Message: "canceling statement due to lock timeout"}, true},
		{&pq.Error{Code: "25P03", Message: "terminating connection due to idle-in-transaction timeout"}, true},
		{&pq.Error{Code: "55000"}, false}, // object not in prerequisite state: a bug, not an outage
		{fmt.Errorf("x: %w", eventstore.ErrClosed), true},
	}
	for _, c := range cases {
		if got := eventstore.Unavailable(c.err); got != c.want {
			t.Errorf("Unavailable(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
