package postgres

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// SessionTimeouts are server-side limits every connection of idlog's pools starts with, so that a
// statement stuck on a lock or a slow plan, or a transaction left open by a stalled client, ends
// with an error instead of holding the request, the connection and its locks. Zero leaves the
// server's setting.
type SessionTimeouts struct {
	Statement         time.Duration // statement_timeout
	Lock              time.Duration // lock_timeout
	IdleInTransaction time.Duration // idle_in_transaction_session_timeout
}

// WithSessionTimeouts returns dsn with the timeouts added as startup parameters, which lib/pq
// sends when it opens each connection: every pooled connection has them, new or reopened, with
// no SET to forget. A parameter the DSN sets already is kept: the operator's choice wins.
func WithSessionTimeouts(dsn string, t SessionTimeouts) (string, error) {
	params := []struct {
		name string
		d    time.Duration
	}{
		{"statement_timeout", t.Statement},
		{"lock_timeout", t.Lock},
		{"idle_in_transaction_session_timeout", t.IdleInTransaction},
	}
	for _, p := range params {
		if p.d < 0 {
			return "", fmt.Errorf("postgres: %s (%v) cannot be negative", p.name, p.d)
		}
	}
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", fmt.Errorf("postgres: parse %s: %w", Redact(dsn), err)
		}
		q := u.Query()
		for _, p := range params {
			if p.d > 0 && !q.Has(p.name) {
				q.Set(p.name, millis(p.d))
			}
		}
		u.RawQuery = q.Encode()
		return u.String(), nil
	}
	// A key=value connection string.
	for _, p := range params {
		if p.d > 0 && !strings.Contains(dsn, p.name+"=") && !strings.Contains(dsn, p.name+" =") {
			dsn += " " + p.name + "=" + millis(p.d)
		}
	}
	return strings.TrimSpace(dsn), nil
}

// millis is a duration as PostgreSQL reads a timeout setting without unit: milliseconds, at
// least 1 (0 would turn the timeout off).
func millis(d time.Duration) string {
	return strconv.FormatInt(max(d.Milliseconds(), 1), 10)
}
