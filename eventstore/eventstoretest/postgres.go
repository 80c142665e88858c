package eventstoretest

import (
	"database/sql"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/google/uuid"
	_ "github.com/lib/pq" // the driver of the schema's DSN
)

// PostgresEnv names the variable that gives tests a PostgreSQL database to make schemas in.
const PostgresEnv = "IDLOG_TEST_DATABASE_URL"

// PostgresSchema makes an empty schema for one test in the database PostgresEnv names, drops it
// when the test ends, and returns a DSN whose search_path points at it, so parallel tests share
// one database without seeing each other. Without PostgresEnv the test is skipped, loudly.
func PostgresSchema(t testing.TB) string {
	t.Helper()
	base := os.Getenv(PostgresEnv)
	if base == "" {
		t.Skip("Postgres test SKIPPED: set " + PostgresEnv + "=postgres://postgres@127.0.0.1:5432/test?sslmode=disable")
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("%s: %v", PostgresEnv, err)
	}
	admin, err := sql.Open("postgres", base)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	schema := "t_" + strings.ReplaceAll(uuid.NewString(), "-", "")[:16]
	if _, err := admin.Exec("CREATE SCHEMA " + schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		db, err := sql.Open("postgres", base)
		if err != nil {
			return
		}
		defer db.Close()
		db.Exec("DROP SCHEMA " + schema + " CASCADE") //nolint:errcheck // best effort: the next run does not need it gone
	})
	q := u.Query()
	q.Set("search_path", schema) // lib/pq sends unknown parameters as session settings
	u.RawQuery = q.Encode()
	return u.String()
}
