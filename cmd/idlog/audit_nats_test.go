package main

import (
	"context"
	"database/sql"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/idlog/idlog/audit"
	"github.com/idlog/idlog/eventbus"
	"github.com/idlog/idlog/eventstore/sqlite"
	"github.com/idlog/idlog/internal/config"
	"github.com/idlog/idlog/migrations"
	"github.com/idlog/idlog/projections"
)

// TestAuditVerifyAgainstNATS: serve's sealer publishes signed checkpoints to the IDLOG_AUDIT
// stream (here a sealer with the same publisher, on an embedded NATS server). After a rewrite of
// event 7 and a reseal, verify alone is fooled; verify -checkpoint nats reads the stream, catches
// it and names the event; a checkpoint in the stream whose signature fails refuses the stream.
func TestAuditVerifyAgainstNATS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := config.Config{DataDir: dir}
	srv, err := eventbus.StartServer(eventbus.ServerOptions{StoreDir: cfg.NATSStoreDir(), CredentialsDir: cfg.NATSCredentialsDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	u, err := url.Parse(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	// The data directory and the port: verify finds the reader's credentials by itself.
	env := map[string]string{"IDLOG_DATA_DIR": dir, "IDLOG_NATS_PORT": u.Port()}

	signer, err := loadEventSigner(cfg)
	if err != nil {
		t.Fatal(err)
	}
	client, err := eventbus.NewClient(eventbus.ClientOptions{Server: srv, Signer: signer})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.Close)
	pub, err := eventbus.NewAuditPublisher(client)
	if err != nil {
		t.Fatal(err)
	}
	auditKey, err := loadAuditSigner(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runIdlog(t, env, "audit", "verify", "-checkpoint", "nats"); code != 1 || !strings.Contains(stderr, "IDLOG_AUDIT does not exist yet") {
		t.Fatalf("verify before any checkpoint: exit %d, stderr %q", code, stderr)
	}
	sealToNATS := func() {
		t.Helper()
		store, err := sqlite.Open(t.Context(), sqlite.Options{Path: cfg.SQLitePath()})
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		db, err := projections.OpenSQLite(t.Context(), cfg.SQLitePath())
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		ledger, err := audit.NewLedger(db, migrations.SQLite)
		if err != nil {
			t.Fatal(err)
		}
		// A checkpoint per event, as serve makes under a light load: a mismatch names its event.
		s, err := audit.NewSealer(audit.SealerOptions{Store: store, Ledger: ledger, CheckpointEvery: 1, Signer: auditKey, Publisher: pub})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.CatchUp(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	seedDataDir(t, dir)
	sealToNATS()
	ids := seedDataDir(t, dir)
	sealToNATS()
	for _, args := range [][]string{{"-checkpoint", "nats"}, {"--checkpoint", "nats"}} {
		if code, stdout, stderr := runIdlog(t, env, append([]string{"audit", "verify"}, args...)...); code != 0 || !strings.Contains(stdout, "10 signed, 10 matched, covering 10 events") {
			t.Fatalf("verify %q: exit %d, stdout %q, stderr %q", args, code, stdout, stderr)
		}
	}

	// Rewrite and reseal, by someone who can write to the database and read the audit key but
	// cannot publish to NATS (idlog audit seal publishes nowhere but the checkpoint file).
	db, err := sql.Open("sqlite", sqliteDSN(cfg.SQLitePath()))
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
	if code, stdout, stderr := runIdlog(t, map[string]string{"IDLOG_DATA_DIR": dir}, "audit", "seal"); code != 0 {
		t.Fatalf("reseal: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if code, stdout, _ := runIdlog(t, env, "audit", "verify"); code != 0 {
		t.Fatalf("the reseal should fool verify without checkpoints: exit %d, %q", code, stdout)
	}
	code, stdout, stderr := runIdlog(t, env, "audit", "verify", "-checkpoint", "nats")
	if code != 1 || !strings.Contains(stdout, "PROBLEM:       the log does not match a signed checkpoint (size 7") ||
		!strings.Contains(stdout, "event:       "+ids[6]+" at ordinal 7") {
		t.Fatalf("verify against NATS after the reseal: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}

	// A checkpoint signed by another key of the same name, published with idlog's own NATS
	// credentials (as a thief of them could): the stream is refused before the log is read.
	forgerKey, forgerPub, err := audit.NewAuditKey(auditKey.Name())
	if err != nil {
		t.Fatal(err)
	}
	fs, _, err := audit.ParseAuditKey([]byte(forgerKey + "\n" + forgerPub))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	forged, err := audit.TreeHead{Origin: fs.Name(), Size: 11, Root: audit.EmptyRoot(), Time: now}.Sign(fs)
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.PublishCheckpoint(context.Background(), audit.Checkpoint{Ordinal: 11, SealedAt: now, Note: string(forged)}); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = runIdlog(t, env, "audit", "verify", "-checkpoint", "nats")
	if code != 1 || !strings.Contains(stderr, "checkpoint 11 of stream IDLOG_AUDIT refused") || strings.Contains(stdout, "verified") {
		t.Fatalf("verify against a stream with a forged checkpoint: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}
