package readreplica_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"

	"github.com/lib/pq"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/idlog/idlog/readreplica"
)

// The tests against a real streaming replica are in faults/standby_test.go (they start one);
// these check what needs no replica.

func primary(t *testing.T) *sql.DB {
	t.Helper()
	dsn := os.Getenv("IDLOG_TEST_DATABASE_URL")
	if dsn == "" {
		t.Skip("Postgres test SKIPPED: set IDLOG_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test?sslmode=disable")
	}
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// A read database that is not in recovery (here the primary itself) has no replay position to
// wait on: New refuses it, so the misconfiguration is found at start.
func TestNewRefusesAServerThatIsNoStandby(t *testing.T) {
	t.Parallel()
	db := primary(t)
	_, err := readreplica.New(context.Background(), readreplica.Options{Primary: db, Replica: db})
	if !errors.Is(err, readreplica.ErrNotStandby) {
		t.Fatalf("New with the primary as replica = %v, want ErrNotStandby", err)
	}
}

// A replica that does not answer does not stop the start: reads go to the primary, counted as
// fallbacks for the reason "down", and a write's answer does not wait for it.
func TestUnreachableReplicaReadsThePrimary(t *testing.T) {
	t.Parallel()
	db := primary(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close() // nothing listens there now
	gone, err := sql.Open("postgres", fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable&connect_timeout=2", port))
	if err != nil {
		t.Fatal(err)
	}
	defer gone.Close()
	reg := prometheus.NewRegistry()
	r, err := readreplica.New(context.Background(), readreplica.Options{Primary: db, Replica: gone, Metrics: reg})
	if err != nil {
		t.Fatalf("New with a replica that does not answer = %v, want a router that reads the primary", err)
	}
	if err := r.Written(context.Background()); err != nil {
		t.Fatalf("Written = %v", err)
	}
	got, err := readreplica.Read(context.Background(), r, "primary", "replica", func(_ context.Context, db string) (string, error) { return db, nil })
	if err != nil || got != "primary" {
		t.Errorf("Read = %q, %v; want the primary's answer", got, err)
	}
	if n := counter(t, reg, "idlog_read_replica_fallbacks_total", "reason", readreplica.ReasonDown); n != 1 {
		t.Errorf("fallbacks for reason down = %v, want 1", n)
	}
	if p, q := counter(t, reg, "idlog_read_replica_reads_total", "database", "primary"),
		counter(t, reg, "idlog_read_replica_reads_total", "database", "replica"); p != 1 || q != 0 {
		t.Errorf("reads by database: primary %v, replica %v; want 1 and 0", p, q)
	}
}

// counter reads the sample of a counter of reg with one label.
func counter(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if mf.GetName() == name && lp.GetName() == label && lp.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{%s=%q}", name, label, value)
	return 0
}

// A query's own answer (not found, a bad filter) is no failure of the replica and is not run again
// on the primary; a lost connection, a shutdown or a query cancelled by recovery is.
func TestFailedTellsTheReplicaFromTheQuery(t *testing.T) {
	t.Parallel()
	db := primary(t)
	gone, _ := sql.Open("postgres", "postgres://postgres@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=1")
	defer gone.Close()
	r, err := readreplica.New(context.Background(), readreplica.Options{Primary: db, Replica: gone})
	if err != nil {
		t.Fatal(err)
	}
	notFound := errors.New("projections: not found")
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{notFound, false},
		{fmt.Errorf("read users: %w", notFound), false},
		{&pq.Error{Code: "42P01"}, false}, // undefined table: the query's
		{&pq.Error{Code: "40001"}, true},  // canceling statement due to conflict with recovery
		{&pq.Error{Code: "57P01"}, true},  // terminating connection due to administrator command
		{fmt.Errorf("read users: %w", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}), true},
	} {
		if got := r.Failed(context.Background(), tt.err); got != tt.want {
			t.Errorf("Failed(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
	// The caller's own deadline is the caller's, not the replica's.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if r.Failed(ctx, &pq.Error{Code: "57014"}) {
		t.Error("Failed after the caller's context ended = true, want false")
	}
}

// Without a router (no read replica set), Read reads the primary.
func TestNilRouterReadsThePrimary(t *testing.T) {
	t.Parallel()
	got, err := readreplica.Read(context.Background(), nil, "primary", "replica", func(_ context.Context, db string) (string, error) { return db, nil })
	if err != nil || !strings.EqualFold(got, "primary") {
		t.Errorf("Read = %q, %v; want the primary's answer", got, err)
	}
}
