package roundtrips_test

import (
	"context"
	"database/sql"
	"os"
	"testing"

	"github.com/idlog/idlog/internal/roundtrips"
)

// TestCountsWhatLibPQSends: lib/pq runs a query without arguments in one round trip, a query with
// arguments in two (parse, then bind and execute), a prepared statement in one, and a transaction
// adds its BEGIN and COMMIT. Only the tracked context's round trips are counted.
func TestCountsWhatLibPQSends(t *testing.T) {
	dsn := os.Getenv("IDLOG_TEST_DATABASE_URL")
	if dsn == "" {
		t.Skip("set IDLOG_TEST_DATABASE_URL")
	}
	t.Parallel()
	c, err := roundtrips.Connector(dsn)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	defer db.Close()
	db.SetMaxOpenConns(1)
	if err := db.Ping(); err != nil {
		t.Fatal(err)
	}
	stmt, err := db.Prepare(`SELECT $1::int + 1`)
	if err != nil {
		t.Fatal(err)
	}
	defer stmt.Close()
	var n int
	cases := []struct {
		name string
		run  func(ctx context.Context) error
		want int64
	}{
		{"simple query", func(ctx context.Context) error { return db.QueryRowContext(ctx, `SELECT 1`).Scan(&n) }, 1},
		{"query with arguments", func(ctx context.Context) error { return db.QueryRowContext(ctx, `SELECT $1::int`, 1).Scan(&n) }, 2},
		{"prepared statement", func(ctx context.Context) error { return stmt.QueryRowContext(ctx, 1).Scan(&n) }, 1},
		{"transaction", func(ctx context.Context) error {
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				return err
			}
			if err := tx.QueryRowContext(ctx, `SELECT 1`).Scan(&n); err != nil {
				return err
			}
			return tx.Commit()
		}, 3},
	}
	for _, tc := range cases {
		ctx, counter := roundtrips.Track(context.Background())
		if err := tc.run(ctx); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if err := db.QueryRow(`SELECT 2`).Scan(&n); err != nil { // untracked: not counted
			t.Fatal(err)
		}
		if got := counter.N(); got != tc.want {
			t.Errorf("%s: %d round trips, want %d", tc.name, got, tc.want)
		}
	}
}
