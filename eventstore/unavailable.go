package eventstore

import (
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"syscall"
)

// Unavailable reports whether err says that the database behind a store or a read model could
// not be reached or dropped the connection (a restart, a failover, a terminated backend): the
// request did not take effect as far as the caller can tell, and may succeed if tried again. The
// API answers such errors 503, not 500.
func Unavailable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrClosed) || errors.Is(err, driver.ErrBadConn) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return true
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true
	}
	// SQLSTATE classes 08 (connection exception) and 57 (operator intervention: shutdown,
	// terminated backend, cannot connect now, and 57014, a statement_timeout), and the session
	// timeouts idlog sets: 55P03 (lock_timeout) and 25P03 (idle_in_transaction_session_timeout).
	// Drivers expose the state through SQLState.
	var coded interface{ SQLState() string }
	if errors.As(err, &coded) {
		switch state := coded.SQLState(); {
		case len(state) == 5 && (state[:2] == "08" || state[:2] == "57"):
			return true
		case state == "55P03" || state == "25P03":
			return true
		}
	}
	return false
}
