package main

import (
	"testing"
	"time"

	"github.com/idlog/idlog/eventstore/eventstoretest"
	"github.com/idlog/idlog/eventstore/postgres"
	"github.com/idlog/idlog/internal/config"
)

// serve's PostgreSQL pool starts every connection with timeouts that follow the request
// deadline; one-shot commands (imports, rebuilds) keep the server's.
func TestServeSetsPostgresSessionTimeouts(t *testing.T) {
	t.Parallel()
	dsn := eventstoretest.PostgresSchema(t)
	cfg := config.Config{DatabaseURL: dsn, RequestTimeout: 4 * time.Second}
	show := func(timeouts postgres.SessionTimeouts) (statement, lock, idle string) {
		t.Helper()
		s, err := openStoreWith(t.Context(), cfg, discardLogger(), timeouts)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		db := s.(*postgres.Store).DB()
		if err := db.QueryRowContext(t.Context(), "SELECT current_setting('statement_timeout'), current_setting('lock_timeout'), current_setting('idle_in_transaction_session_timeout')").Scan(&statement, &lock, &idle); err != nil {
			t.Fatal(err)
		}
		return statement, lock, idle
	}
	if s, l, i := show(serveTimeouts(cfg)); s != "4s" || l != "4s" || i != "8s" {
		t.Errorf("serve's session timeouts: statement %s, lock %s, idle in transaction %s; want 4s, 4s, 8s", s, l, i)
	}
	if s, l, _ := show(postgres.SessionTimeouts{}); s != "0" || l != "0" {
		t.Errorf("a one-shot command's session timeouts: statement %s, lock %s; want the server's (0)", s, l)
	}
}
