package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/eventstore/sqlite"
	"github.com/idlog/idlog/projections"
)

func TestProjectionsStatusAndRebuild(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	store, err := sqlite.Open(context.Background(), sqlite.Options{Path: filepath.Join(dir, "idlog.db")})
	if err != nil {
		t.Fatal(err)
	}
	var last uint64
	for i, uid := range []string{"ID000000000A", "ID000000000B", "ID000000000C"} {
		data, _ := json.Marshal(domain.UserRegistered{UserID: domain.UserID(uid), Email: strings.ToLower(uid) + "@example.com", Role: domain.RoleMember, PasswordHash: "$argon2id$x"})
		res, err := store.Append(context.Background(), eventstore.Append{Stream: domain.UserStreamPrefix + uid, Expected: eventstore.NoStream,
			Events: []eventstore.NewEvent{{Type: "UserRegistered", SchemaVersion: 1, Data: data, Metadata: eventstore.Metadata{IP: "192.0.2.1"}}}})
		if err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		last = res.LastPosition
	}
	store.Close()
	env := map[string]string{"IDLOG_DATA_DIR": dir}

	status := func() map[string]projections.Status {
		t.Helper()
		code, out, errOut := runIdlog(t, env, "projections", "status", "-json")
		if code != 0 {
			t.Fatalf("status: exit %d: %s", code, errOut)
		}
		var st []projections.Status
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("status -json: %v: %s", err, out)
		}
		m := map[string]projections.Status{}
		for _, s := range st {
			m[s.Name] = s
		}
		return m
	}
	st := status()
	if s := st["users"]; s.Position != 0 || s.LagEvents != 3 || st["activity"].LagEvents != 3 {
		t.Fatalf("before any run: %+v; want users and activity 3 events behind", st)
	}

	code, out, errOut := runIdlog(t, env, "projections", "rebuild", "-data-dir", dir, "all")
	if code != 0 || !strings.Contains(out, "users: generation 2 is live") || !strings.Contains(out, "activity: generation 2 is live") {
		t.Fatalf("rebuild all: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	st = status()
	for _, name := range []string{"users", "activity"} {
		if s := st[name]; s.Generation != 2 || s.Position != last || s.LagEvents != 0 || s.State != projections.StateLive {
			t.Errorf("%s after the rebuild: %+v; want generation 2 live at %d", name, s, last)
		}
	}
	// Transactions of one event each give the same read models, one generation on.
	code, out, errOut = runIdlog(t, env, "projections", "rebuild", "-data-dir", dir, "-batch", "1", "all")
	if code != 0 || !strings.Contains(out, "users: generation 3 is live") || !strings.Contains(out, "activity: generation 3 is live") {
		t.Fatalf("rebuild -batch 1 all: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	code, out, _ = runIdlog(t, env, "projections", "status")
	if code != 0 || !strings.Contains(out, "PROJECTOR") || !strings.Contains(out, "users ") {
		t.Errorf("status table: exit %d: %s", code, out)
	}

	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"projections", "rebuild", "nope"}, 1, "unknown projector"},
		{[]string{"projections", "rebuild"}, 2, "name a projector"},
		{[]string{"projections"}, 2, "Usage"},
		{[]string{"projections", "shuffle"}, 2, "unknown subcommand"},
		{[]string{"projections", "rebuild", "-data-dir", dir, "-batch", "0", "all"}, 2, "-batch (0) must be at least 1"},
	} {
		code, out, errOut := runIdlog(t, env, c.args...)
		if code != c.code || !strings.Contains(out+errOut, c.want) {
			t.Errorf("idlog %s: exit %d, %q; want exit %d saying %q", strings.Join(c.args, " "), code, out+errOut, c.code, c.want)
		}
	}
}
