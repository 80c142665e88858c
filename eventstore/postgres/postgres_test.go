package postgres_test

import (
	"context"
	"os"
	"strings"
	"testing"

	_ "github.com/lib/pq"

	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/eventstore/eventstoretest"
	"github.com/idlog/idlog/eventstore/postgres"
)

func open(t testing.TB, o postgres.Options) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	if os.Getenv("IDLOG_TEST_DATABASE_URL") == "" {
		t.Skip("Postgres conformance suite SKIPPED: set IDLOG_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test?sslmode=disable")
	}
	eventstoretest.Run(t, eventstoretest.Backend{
		Features: eventstoretest.Features{BeforeCommitHook: true, Checkpoints: true, KeyOwners: true, GlobalEventIDs: true},
		New: func(t *testing.T, h eventstoretest.Hooks) (eventstore.Store, func(*testing.T) eventstore.Store) {
			dsn := eventstoretest.PostgresSchema(t)
			o := postgres.Options{DSN: dsn, BeforeCommit: h.BeforeCommit}
			return open(t, o), func(t *testing.T) eventstore.Store { return open(t, o) }
		},
	})
}

func TestOptionsAreValidated(t *testing.T) {
	t.Parallel()
	cases := map[string]postgres.Options{
		"DSN is empty":        {},
		"poll interval (-1s)": {DSN: "postgres://x", PollInterval: -1e9},
		"page size (-5)":      {DSN: "postgres://x", PageSize: -5},
	}
	for want, o := range cases {
		_, err := postgres.Open(context.Background(), o)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Open(%+v) = %v, want an error naming %q", o, err, want)
		}
	}
}

func TestConnectErrorHidesPassword(t *testing.T) {
	t.Parallel()
	_, err := postgres.Open(context.Background(), postgres.Options{DSN: "postgres://idlog:s3cret-pw@127.0.0.1:1/idlog?sslmode=disable&connect_timeout=2"})
	if err == nil {
		t.Fatal("connecting to a closed port succeeded")
	}
	if strings.Contains(err.Error(), "s3cret-pw") || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("error %q must name the server and hide the password", err)
	}
}
