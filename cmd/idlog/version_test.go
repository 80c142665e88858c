package main

import (
	"encoding/json"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// `idlog version` and `idlog --version` print the version; GET /api/v2/identity/version answers
// the same.
func TestVersion(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"version"}, {"--version"}, {"-version"}} {
		code, stdout, stderr := runIdlog(t, nil, args...)
		if code != 0 || stdout != "idlog "+version()+"\n" {
			t.Errorf("idlog %v = %d, stdout %q, stderr %q", args, code, stdout, stderr)
		}
	}
	env := map[string]string{"IDLOG_DATA_DIR": t.TempDir(), "IDLOG_HTTP_ADDR": "127.0.0.1:0", "IDLOG_NATS_PORT": "none", "IDLOG_LOG_FORMAT": "json",
		"IDLOG_ARGON2_MEMORY": "64", "IDLOG_ARGON2_ITERATIONS": "1"}
	base, stop := startServe(t, env)
	defer stop()
	res, err := http.Get(base + "/api/v2/identity/version")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var v struct{ Version string }
	if err := json.NewDecoder(res.Body).Decode(&v); err != nil || v.Version != version() {
		t.Errorf("/api/v2/identity/version: %+v, %v; want %q", v, err, version())
	}

	// healthcheck: 0 against the running server (found by IDLOG_HTTP_ADDR), 1 against none.
	addr := strings.TrimPrefix(base, "http://")
	for _, args := range [][]string{{"healthcheck"}, {"healthcheck", "-ready"}} {
		if code, stdout, stderr := runIdlog(t, map[string]string{"IDLOG_HTTP_ADDR": addr}, args...); code != 0 || !strings.Contains(stdout, "200 OK") {
			t.Errorf("idlog %v against a running serve = %d, %q %q", args, code, stdout, stderr)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	if code, _, stderr := runIdlog(t, map[string]string{"IDLOG_HTTP_ADDR": dead}, "healthcheck"); code != 1 || !strings.Contains(stderr, "unhealthy") {
		t.Errorf("idlog healthcheck against nothing = %d, %q", code, stderr)
	}
	if got := loopbackURL("0.0.0.0:8080"); got != "http://127.0.0.1:8080" {
		t.Errorf("loopbackURL(0.0.0.0:8080) = %q", got)
	}
}

// The version is stamped at build time with -ldflags -X, as the Dockerfile does.
func TestVersionStampedAtBuild(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "idlog")
	build := exec.Command("go", "build", "-ldflags", "-X main.buildVersion=v9.8.7-test", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "--version").Output()
	if err != nil || string(out) != "idlog v9.8.7-test\n" {
		t.Errorf("stamped binary --version = %q, %v", out, err)
	}
}

// Each subcommand's -h lists its own flags before the configuration's.
func TestSubcommandHelpListsItsFlagsFirst(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		own  string
	}{
		{[]string{"users", "import", "-h"}, "-format"},
		{[]string{"users", "create", "-h"}, "-email"},
		{[]string{"events", "tail", "-h"}, "-durable"},
		{[]string{"healthcheck", "-h"}, "-ready"},
	} {
		code, _, stderr := runIdlog(t, nil, tc.args...)
		own, conf := strings.Index(stderr, "  "+tc.own), strings.Index(stderr, "Configuration flags")
		if code != 0 || own < 0 || conf < 0 || own > conf || strings.Index(stderr, "-http-addr") < conf {
			t.Errorf("idlog %v = %d, want %s before the configuration flags:\n%s", tc.args, code, tc.own, stderr)
		}
	}
}
