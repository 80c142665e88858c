package postgres_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/idlog/idlog/eventstore/eventstoretest"
)

// Without a database, `go test ./...` must not print a bare "ok" for this package, whose suite
// then cannot run: it says [no tests to run], and in CI it fails. (This test itself runs only
// with a database: it runs the package again without one.)
func TestSkippedSuiteIsLoud(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs go test")
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, eventstoretest.PostgresEnv+"=") && !strings.HasPrefix(kv, "CI=") {
			env = append(env, kv)
		}
	}
	goTest := func(extra ...string) (string, error) {
		cmd := exec.Command("go", "test", "-count=1", "-run", "TestConformance", ".")
		cmd.Env = append(env, extra...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := goTest()
	if err != nil || !strings.Contains(out, "[no tests to run]") {
		t.Errorf("go test without a database: %v\n%s\nwant ok ... [no tests to run]", err, out)
	}
	out, err = goTest("CI=true")
	if err == nil || !strings.Contains(out, "FAIL") || !strings.Contains(out, "SKIPPED") {
		t.Errorf("go test in CI without a database: %v\n%s\nwant a failure naming the skipped suite", err, out)
	}
}
