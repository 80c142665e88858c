package postgres_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/idlog/idlog/eventstore/eventstoretest"
)

// TestMain says loudly when the suite cannot run. `go test ./...` shows nothing of a passing
// package but its summary line, so without PostgreSQL the package runs no test at all and prints
// the line the go command turns into "ok ... [no tests to run]", beside a banner for -v and
// single-package runs; in CI (CI=true) a missing database fails instead.
func TestMain(m *testing.M) {
	if os.Getenv(eventstoretest.PostgresEnv) == "" {
		msg := "PostgreSQL event store suite SKIPPED: set " + eventstoretest.PostgresEnv + "=postgres://postgres@127.0.0.1:5432/test?sslmode=disable to run it"
		fmt.Fprintln(os.Stderr, "*** "+msg+" ***")
		if os.Getenv("CI") == "true" {
			fmt.Fprintln(os.Stderr, "FAIL: CI must run the PostgreSQL suite")
			os.Exit(1)
		}
		fmt.Println("testing: warning: no tests to run")
		os.Exit(0)
	}
	os.Exit(m.Run())
}
