package main

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/idlog/idlog/eventstore/sqlite"
)

// runWithStdin runs idlog in-process with standard input.
func runWithStdin(t *testing.T, env map[string]string, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr syncBuffer
	code := run(t.Context(), args, &environment{
		stdin: strings.NewReader(stdin), stdout: &stdout, stderr: &stderr, getenv: func(k string) string { return env[k] },
	})
	return code, stdout.String(), stderr.String()
}

func TestUsersCreate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	env := map[string]string{"IDLOG_DATA_DIR": dir, "IDLOG_ARGON2_MEMORY": "64", "IDLOG_ARGON2_ITERATIONS": "1"}
	const password = "the first admin's passphrase"
	code, stdout, stderr := runWithStdin(t, env, password+"\n", "users", "create", "--email", "Root@Example.com", "--password-stdin", "--role", "admin", "--username", "root")
	if code != 0 {
		t.Fatalf("users create = %d, stderr %s", code, stderr)
	}
	uid := strings.TrimSpace(stdout)
	if len(uid) != 12 || !strings.HasPrefix(uid, "ID") {
		t.Fatalf("stdout %q, want the new uid", stdout)
	}
	if strings.Contains(stderr, password) {
		t.Error("the password is in the log")
	}

	s, err := sqlite.Open(t.Context(), sqlite.Options{Path: filepath.Join(dir, "idlog.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var types []string
	for e, err := range s.ReadStream(t.Context(), "user-"+uid, 0) {
		if err != nil {
			t.Fatal(err)
		}
		types = append(types, e.Type)
		if e.Type == "UserRegistered" && !strings.Contains(string(e.Data), `"role":"admin"`) {
			t.Errorf("UserRegistered = %s, want the admin role", e.Data)
		}
		if e.Metadata.ActorUID != "system" || strings.Contains(string(e.Data), password) {
			t.Errorf("%s: metadata %+v, data %s", e.Type, e.Metadata, e.Data)
		}
	}
	if !slices.Contains(types, "EmailVerified") {
		t.Errorf("events %v: the operator's address is not verified", types)
	}

	// The same address again, a bad role, and no password are refused.
	code, _, stderr = runWithStdin(t, env, password+"\n", "users", "create", "--email", "root@example.com", "--password-stdin")
	if code != 1 || !strings.Contains(stderr, "already taken") {
		t.Errorf("second create = %d %q, want 1 and the address taken", code, stderr)
	}
	for _, tt := range []struct {
		args  []string
		stdin string
		code  int
		want  string
	}{
		{[]string{"users", "create", "--email", "x@example.com", "--password-stdin", "--role", "god"}, password, 1, `--role "god"`},
		{[]string{"users", "create", "--email", "x@example.com"}, password, 2, "--password-stdin is required"},
		{[]string{"users", "create", "--password-stdin"}, password, 2, "--email is required"},
		{[]string{"users", "create", "--email", "x@example.com", "--password-stdin"}, "", 1, "holds no password"},
		{[]string{"users", "create", "--email", "x@example.com", "--password-stdin"}, "short\n", 1, "password too weak"},
		{[]string{"users", "delete"}, "", 2, "Usage: idlog users create"},
	} {
		code, _, stderr := runWithStdin(t, env, tt.stdin, tt.args...)
		if code != tt.code || !strings.Contains(stderr, tt.want) {
			t.Errorf("idlog %q = %d %q, want %d and %q", tt.args, code, stderr, tt.code, tt.want)
		}
	}
}
