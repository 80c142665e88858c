package postgres_test

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/eventstore/eventstoretest"
	"github.com/idlog/idlog/eventstore/postgres"
)

// Every pooled connection starts with the session timeouts, and past them the errors read as an
// unavailable database (503), not an internal error.
func TestSessionTimeouts(t *testing.T) {
	t.Parallel()
	dsn := eventstoretest.PostgresSchema(t)
	s := open(t, postgres.Options{DSN: dsn, Timeouts: postgres.SessionTimeouts{
		Statement: 300 * time.Millisecond, Lock: 200 * time.Millisecond, IdleInTransaction: 3 * time.Second,
	}})
	defer s.Close()
	ctx := context.Background()

	// Several connections at once, so the check is not of one lucky connection.
	var conns []*sql.Conn
	for range 3 {
		c, err := s.DB().Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	for i, c := range conns {
		for setting, want := range map[string]string{
			"statement_timeout": "300ms", "lock_timeout": "200ms", "idle_in_transaction_session_timeout": "3s",
		} {
			var got string
			if err := c.QueryRowContext(ctx, "SHOW "+setting).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("connection %d: %s = %s, want %s", i, setting, got, want)
			}
		}
	}
	for _, c := range conns {
		c.Close()
	}

	_, err := s.DB().ExecContext(ctx, "SELECT pg_sleep(5)")
	if err == nil || !eventstore.Unavailable(err) {
		t.Errorf("a statement past statement_timeout: err = %v, want one that Unavailable reports", err)
	}

	// A lock held elsewhere: the wait ends at lock_timeout.
	if _, err := s.DB().ExecContext(ctx, "CREATE TABLE locked (id int)"); err != nil {
		t.Fatal(err)
	}
	holder, err := sql.Open("postgres", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	tx, err := holder.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback() //nolint:errcheck // only releases the lock
	if _, err := tx.ExecContext(ctx, "LOCK TABLE locked IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	_, err = s.DB().ExecContext(ctx, "SELECT count(*) FROM locked")
	if err == nil || !eventstore.Unavailable(err) {
		t.Errorf("a lock wait past lock_timeout: err = %v, want one that Unavailable reports", err)
	}
}

func TestWithSessionTimeoutsKeepsTheOperatorsChoice(t *testing.T) {
	t.Parallel()
	to := postgres.SessionTimeouts{Statement: 10 * time.Second, Lock: 5 * time.Second}
	got, err := postgres.WithSessionTimeouts("postgres://u:p@db:5432/idlog?statement_timeout=60000&sslmode=disable", to)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(got, "statement_timeout=60000") || !strings.Contains(got, "lock_timeout=5000") ||
		strings.Contains(got, "idle_in_transaction") {
		t.Errorf("URL DSN became %q: want the given statement_timeout kept, lock_timeout added, nothing else", got)
	}
	got, err = postgres.WithSessionTimeouts("host=db dbname=idlog lock_timeout=100", to)
	if err != nil {
		t.Fatal(err)
	}
	if got != "host=db dbname=idlog lock_timeout=100 statement_timeout=10000" {
		t.Errorf("key=value DSN became %q", got)
	}
	if _, err := postgres.WithSessionTimeouts("postgres://db/x", postgres.SessionTimeouts{Lock: -time.Second}); err == nil {
		t.Error("a negative timeout was accepted")
	}
}
