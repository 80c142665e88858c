package main

import (
	"bytes"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/idlog/idlog/internal/config"
)

// TestAuditCheckpointsOutsideTheDatabase: seal writes signed checkpoints to a file; after a
// rewrite of an event and a reseal, verify alone is fooled, verify against the file is not; a file
// whose signature fails is refused; an exported event and its proof check with no database.
func TestAuditCheckpointsOutsideTheDatabase(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cpFile := filepath.Join(t.TempDir(), "checkpoints")
	env := map[string]string{"IDLOG_DATA_DIR": dir, "IDLOG_AUDIT_CHECKPOINT_FILE": cpFile}
	seedDataDir(t, dir)
	if code, stdout, stderr := runIdlog(t, env, "audit", "seal"); code != 0 {
		t.Fatalf("seal: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	ids := seedDataDir(t, dir)
	if code, stdout, stderr := runIdlog(t, env, "audit", "seal"); code != 0 || !strings.Contains(stdout, "ordinal 10") {
		t.Fatalf("seal: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	keyFile := config.Config{DataDir: dir}.AuditKeyPath()
	if code, stdout, stderr := runIdlog(t, env, "audit", "verify", "-checkpoint", cpFile); code != 0 || !strings.Contains(stdout, "2 signed, 2 matched, covering 10 events") {
		t.Fatalf("verify against the checkpoints: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}

	// The auditor's take-away: the checkpoint, an exported event and its proof.
	code, exported, stderr := runIdlog(t, env, "events", "export")
	if code != 0 {
		t.Fatalf("export: %d %s", code, stderr)
	}
	lines := strings.SplitAfter(exported, "\n")
	code, proofJSON, stderr := runIdlog(t, env, "audit", "prove", "-ordinal", "7")
	if code != 0 {
		t.Fatalf("prove: exit %d, stderr %q", code, stderr)
	}
	code, note, stderr := runIdlog(t, env, "audit", "checkpoint")
	if code != 0 || !strings.HasPrefix(note, "idlog-audit\n10\n") {
		t.Fatalf("checkpoint: exit %d, %q, stderr %q", code, note, stderr)
	}
	away := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(away, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cp, ev, pr := write("checkpoint", note), write("event", lines[6]), write("proof", proofJSON)
	noDB := map[string]string{"IDLOG_DATA_DIR": t.TempDir()}
	if code, stdout, stderr := runIdlog(t, noDB, "audit", "check-proof", "-checkpoint", cp, "-public-key", keyFile, "-event", ev, "-proof", pr); code != 0 || !strings.HasPrefix(stdout, "yes") {
		t.Fatalf("check-proof: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	other := write("other", lines[5])
	if code, stdout, _ := runIdlog(t, noDB, "audit", "check-proof", "-checkpoint", cp, "-public-key", keyFile, "-event", other, "-proof", pr); code != 1 || !strings.HasPrefix(stdout, "no") {
		t.Fatalf("check-proof of another event: exit %d, stdout %q", code, stdout)
	}
	changed := write("changed", strings.Replace(lines[6], `"i":1`, `"i":9`, 1))
	if changed == ev || strings.Contains(lines[6], `"i":1`) == false {
		t.Fatalf("event 7 is not the one expected: %s", lines[6])
	}
	if code, stdout, _ := runIdlog(t, noDB, "audit", "check-proof", "-checkpoint", cp, "-public-key", keyFile, "-event", changed, "-proof", pr); code != 1 || !strings.HasPrefix(stdout, "no") {
		t.Fatalf("check-proof of a changed event: exit %d, stdout %q", code, stdout)
	}

	// Rewrite and reseal: event 7's data changes, the ledger, checkpoints and tree are cut back
	// to before it, and sealed again (without the auditor's file).
	db, err := sql.Open("sqlite", sqliteDSN(config.Config{DataDir: dir}.SQLitePath()))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{
		`UPDATE events SET data = replace(data, '"i":1', '"i":9') WHERE event_id = '` + ids[6] + `'`,
		`DELETE FROM audit_events WHERE ordinal >= 7`,
		`DELETE FROM audit_checkpoints WHERE ordinal >= 7`,
		`DELETE FROM audit_tree_tiles`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	attacker := map[string]string{"IDLOG_DATA_DIR": dir}
	if code, stdout, stderr := runIdlog(t, attacker, "audit", "seal"); code != 0 {
		t.Fatalf("reseal: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if code, stdout, _ := runIdlog(t, env, "audit", "verify"); code != 0 {
		t.Fatalf("the reseal should fool verify without checkpoints: exit %d, %q", code, stdout)
	}
	code, stdout, _ := runIdlog(t, env, "audit", "verify", "-checkpoint", cpFile)
	if code != 1 || !strings.Contains(stdout, "PROBLEM:       the log does not match a signed checkpoint (size 10") ||
		!strings.Contains(stdout, "ordinals 6 to 10 (at 6: "+ids[5]+")") {
		t.Fatalf("verify against the checkpoints after the reseal: exit %d, stdout %q", code, stdout)
	}

	// A checkpoint file with a signature that fails is refused, whatever the log.
	data, err := os.ReadFile(cpFile)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.LastIndex(data, []byte(" ")) + 3
	data[i] ^= 1
	bad := write("bad-checkpoints", string(data))
	code, stdout, stderr = runIdlog(t, env, "audit", "verify", "-checkpoint", bad)
	if code != 1 || !strings.Contains(stderr, "refused") || strings.Contains(stdout, "verified") {
		t.Fatalf("verify against a forged checkpoint: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if code, stdout, _ := runIdlog(t, noDB, "audit", "check-proof", "-checkpoint", bad, "-public-key", keyFile, "-event", ev, "-proof", pr); code != 1 || !strings.HasPrefix(stdout, "no") {
		t.Fatalf("check-proof with a forged checkpoint: exit %d, stdout %q", code, stdout)
	}
}
