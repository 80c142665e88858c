package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/idlog/idlog/audit"
	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/eventstore/postgres"
	"github.com/idlog/idlog/eventstore/sqlite"
	"github.com/idlog/idlog/internal/config"
	"github.com/idlog/idlog/migrations"
	"github.com/idlog/idlog/projections"
)

var auditCommand = command{name: "audit", summary: "seal the event log and verify that nothing was altered (audit seal|verify)", run: auditRun}

// errTampered: verify found the log altered; the report says where. Exit status 1.
var errTampered = errors.New("the event log does not match what was sealed")

func auditRun(ctx context.Context, env *environment, args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "verify":
			return auditVerify(ctx, env, args[1:])
		case "seal":
			return auditSeal(ctx, env, args[1:])
		case "prove":
			return auditProve(ctx, env, args[1:])
		case "checkpoint":
			return auditCheckpoint(ctx, env, args[1:])
		case "check-proof":
			return auditCheckProof(ctx, env, args[1:])
		}
	}
	fmt.Fprint(env.stderr, "Usage: idlog audit verify [-json] [-checkpoint FILE|nats [-audit-public-key KEY]] [flags]\n"+
		"       idlog audit seal [flags]\n"+
		"       idlog audit checkpoint [flags]\n"+
		"       idlog audit prove -ordinal N | -from N [-size N] [flags]\n"+
		"       idlog audit check-proof -checkpoint FILE -public-key KEY -event FILE -proof FILE\n\n"+
		"verify recomputes the hash chain over the whole event log and compares it with the sealed\n"+
		"ledger; it names the first changed, deleted, inserted or reordered event (exit status 1).\n"+
		"With -checkpoint it also rebuilds the Merkle tree from the log and compares it with signed\n"+
		"checkpoints kept outside the database (a file, or the IDLOG_AUDIT stream on NATS). seal seals every event not sealed yet and writes a\n"+
		"signed checkpoint. checkpoint prints the latest signed checkpoint; prove prints an inclusion\n"+
		"or consistency proof; check-proof checks an exported event against a checkpoint and a proof\n"+
		"with no database. Run idlog audit <command> -h for the flags.\n")
	if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help") {
		return flag.ErrHelp
	}
	return errUsage
}

// openAudited opens the configured event store and its audit ledger. A writable ledger on SQLite
// needs a pool of its own: the store's is read-only.
func openAudited(ctx context.Context, cfg config.Config, env *environment, writable bool) (eventstore.Store, *audit.Ledger, func(), error) {
	store, err := openStore(ctx, cfg, newLogger(env.stderr, cfg))
	if err != nil {
		return nil, nil, nil, cfg.RedactError(err)
	}
	var ledger *audit.Ledger
	closeAll := func() { store.Close() }
	switch s := store.(type) {
	case *postgres.Store:
		ledger, err = audit.NewLedger(s.DB(), migrations.Postgres)
	case *sqlite.Store:
		if !writable {
			ledger, err = audit.NewLedger(s.DB(), migrations.SQLite)
			break
		}
		db, openErr := projections.OpenSQLite(ctx, cfg.SQLitePath())
		if openErr != nil {
			store.Close()
			return nil, nil, nil, openErr
		}
		closeAll = func() { db.Close(); store.Close() }
		ledger, err = audit.NewLedger(db, migrations.SQLite)
	default:
		err = fmt.Errorf("the audit ledger lives in the SQL event store (Postgres or SQLite), not in %T", store)
	}
	if err != nil {
		closeAll()
		return nil, nil, nil, err
	}
	return store, ledger, closeAll, nil
}

func auditVerify(ctx context.Context, env *environment, args []string) error {
	fs := flag.NewFlagSet("audit verify", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print the report as JSON")
	cpFile := fs.String("checkpoint", "", "`file` of signed checkpoints kept outside the database (IDLOG_AUDIT_CHECKPOINT_FILE) to verify the log against, or nats to read them from the IDLOG_AUDIT stream (IDLOG_NATS_URL, or the embedded server's port)")
	pubKey := fs.String("audit-public-key", "", "the audit public `key` (or a file holding it) the checkpoints must be signed with (default: from the audit key file)")
	cfg, err := loadConfig(fs, args, env)
	if err != nil {
		return err
	}
	// The checkpoints are refused before anything is read if one fails its signature.
	var heads []audit.TreeHead
	if *cpFile != "" {
		vkey, err := verifierKeyOf(cfg, *pubKey)
		if err != nil {
			return err
		}
		if *cpFile == checkpointsFromNATS {
			heads, err = openNATSCheckpoints(ctx, cfg, vkey)
		} else {
			heads, err = openCheckpoints(*cpFile, vkey)
		}
		if err != nil {
			return err
		}
	}
	store, ledger, closeAll, err := openAudited(ctx, cfg, env, false)
	if err != nil {
		return err
	}
	defer closeAll()
	r, err := audit.Verify(ctx, store, ledger)
	if err != nil {
		return cfg.RedactError(err)
	}
	var cr *audit.CheckpointReport
	if heads != nil {
		c, err := audit.VerifyCheckpoints(ctx, store, heads)
		if err != nil {
			return cfg.RedactError(err)
		}
		cr = &c
	}
	if *asJSON {
		enc := json.NewEncoder(env.stdout)
		enc.SetIndent("", "  ")
		var out any = r
		if cr != nil {
			out = struct {
				audit.Report
				Checkpoints *audit.CheckpointReport `json:"external_checkpoints"`
			}{r, cr}
		}
		if err := enc.Encode(out); err != nil {
			return err
		}
	} else {
		printReport(env.stdout, r)
		if cr != nil {
			printCheckpointReport(env.stdout, *cr)
		}
	}
	if !r.OK() || (cr != nil && !cr.OK()) {
		return errTampered
	}
	return nil
}

func printReport(w io.Writer, r audit.Report) {
	fmt.Fprintf(w, "events read:   %d in %v\n", r.Events, r.Duration.Round(1e6))
	fmt.Fprintf(w, "sealed up to:  ordinal %d, position %d\n", r.Sealed.Ordinal, r.Sealed.Position)
	if c := r.LastCheckpoint; c != nil {
		fmt.Fprintf(w, "checkpoint:    ordinal %d, position %d, chain %s, sealed %s (%d checked)\n",
			c.Ordinal, c.Position, c.Chain, c.SealedAt.Format("2006-01-02T15:04:05Z07:00"), r.CheckpointsVerified)
	}
	fmt.Fprintf(w, "verified:      %d events\n", r.Verified)
	fmt.Fprintf(w, "not sealed:    %d events\n", r.Unsealed)
	if p := r.Problem; p != nil {
		fmt.Fprintf(w, "PROBLEM:       %s\n", p.Kind)
		fmt.Fprintf(w, "  event:       %s at ordinal %d\n", p.EventID, p.Ordinal)
		if p.Position != 0 {
			fmt.Fprintf(w, "  in the log:  position %d, stream %s version %d, type %s\n", p.Position, p.StreamID, p.StreamVersion, p.Type)
		}
		if p.SealedOrdinal != 0 {
			fmt.Fprintf(w, "  sealed at:   ordinal %d, position %d\n", p.SealedOrdinal, p.SealedPosition)
		}
		fmt.Fprintf(w, "  detail:      %s\n", p.Detail)
		return
	}
	fmt.Fprintf(w, "chain head:    %s\nOK\n", r.Head)
}

func auditSeal(ctx context.Context, env *environment, args []string) error {
	fs := flag.NewFlagSet("audit seal", flag.ContinueOnError)
	cfg, err := loadConfig(fs, args, env)
	if err != nil {
		return err
	}
	store, ledger, closeAll, err := openAudited(ctx, cfg, env, true)
	if err != nil {
		return err
	}
	defer closeAll()
	signer, err := loadAuditSigner(cfg)
	if err != nil {
		return err
	}
	var pub audit.CheckpointPublisher
	if cfg.Audit.CheckpointFile != "" {
		pub = &audit.CheckpointFile{Path: cfg.Audit.CheckpointFile}
	}
	s, err := audit.NewSealer(audit.SealerOptions{Store: store, Ledger: ledger, Logger: newLogger(env.stderr, cfg), Signer: signer, Publisher: pub})
	if err != nil {
		return err
	}
	tail, err := s.CatchUp(ctx)
	if err != nil {
		return cfg.RedactError(err)
	}
	fmt.Fprintf(env.stdout, "sealed up to ordinal %d, position %d, chain %s\n", tail.Ordinal, tail.Position, tail.Chain)
	return nil
}
