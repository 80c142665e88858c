package main

import (
	"strings"
	"testing"

	"github.com/idlog/idlog/eventstore/eventstoretest"
)

// TestServeRefusesAReadDatabaseThatIsNoStandby: IDLOG_READ_DATABASE_URL naming a server that is
// not in recovery (here the primary itself, reached by another URL) stops serve at start with a
// message naming the setting, instead of reading a database no write waits for. The password of
// the URL is not shown.
func TestServeRefusesAReadDatabaseThatIsNoStandby(t *testing.T) {
	t.Parallel()
	dsn := eventstoretest.PostgresSchema(t)
	// The same server under another URL (the config refuses the very same one).
	read := strings.Replace(dsn, "postgres://postgres@", "postgres://postgres:hunter2@", 1) + "&application_name=idlog-read"
	code, _, stderr := runIdlog(t, map[string]string{
		"IDLOG_DATABASE_URL": dsn, "IDLOG_READ_DATABASE_URL": read, "IDLOG_NATS_PORT": "0", "IDLOG_DATA_DIR": t.TempDir(),
	}, "serve", "-http-addr", "127.0.0.1:0")
	if code == 0 || !strings.Contains(stderr, "IDLOG_READ_DATABASE_URL") || !strings.Contains(stderr, "not a standby") {
		t.Fatalf("serve = %d, stderr %q; want a refusal naming IDLOG_READ_DATABASE_URL: not a standby", code, stderr)
	}
	if strings.Contains(stderr, "hunter2") {
		t.Errorf("stderr shows the password: %s", stderr)
	}
}
