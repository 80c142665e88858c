package main

import (
	"context"
	"log/slog"

	"github.com/jmoiron/sqlx"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/mod/sumdb/note"

	"github.com/idlog/idlog/audit"
	"github.com/idlog/idlog/auth"
	"github.com/idlog/idlog/eventbus"
	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/eventstore/postgres"
	"github.com/idlog/idlog/eventstore/sqlite"
	"github.com/idlog/idlog/follower"
	"github.com/idlog/idlog/internal/config"
	"github.com/idlog/idlog/migrations"
)

// startSealer runs the audit sealer beside serve: it follows the log into the ledger, in the
// store's own database (db is the writable pool the read models use there), and publishes each
// checkpoint, signed with the audit key, to NATS, to IDLOG_AUDIT_CHECKPOINT_FILE and to the witness at IDLOG_AUDIT_WITNESS_URL when set. It returns the ledger (for the audit routes) and a function that stops it.
// With EventStoreDB there is no SQL database of the store's to hold the ledger: nothing is sealed
// and the ledger is nil.
func startSealer(ctx context.Context, cfg config.Config, store eventstore.Store, db *sqlx.DB, client *eventbus.Client, leases follower.Lease, log *slog.Logger, metrics prometheus.Registerer) (ledger *audit.Ledger, stop func(), err error) {
	var dialect migrations.Dialect
	switch store.(type) {
	case *postgres.Store:
		dialect = migrations.Postgres
	case *sqlite.Store:
		dialect = migrations.SQLite
	default:
		log.Warn("audit sealing is off: the ledger lives in the SQL event stores (Postgres, SQLite)", "eventstore", store)
		return nil, func() {}, nil
	}
	ledger, err = audit.NewLedger(db, dialect)
	if err != nil {
		return nil, nil, err
	}
	pub, err := eventbus.NewAuditPublisher(client)
	if err != nil {
		return nil, nil, err
	}
	signer, err := loadAuditSigner(cfg)
	if err != nil {
		return nil, nil, err
	}
	// The witness comes first: it only queues, so NATS being down cannot hold it back.
	var publishers audit.Publishers
	var witness *audit.Witness
	if cfg.Audit.WitnessURL != "" {
		if witness, err = audit.NewWitness(audit.WitnessOptions{URL: cfg.Audit.WitnessURL, Ledger: ledger, Logger: log}); err != nil {
			return nil, nil, err
		}
		if metrics != nil {
			metrics.MustRegister(witness)
		}
		publishers = append(publishers, witness)
	}
	publishers = append(publishers, pub)
	if cfg.Audit.CheckpointFile != "" {
		publishers = append(publishers, &audit.CheckpointFile{Path: cfg.Audit.CheckpointFile})
	}
	sealer, err := audit.NewSealer(audit.SealerOptions{Store: store, Ledger: ledger, Publisher: publishers, Logger: log, Lease: leases, Signer: signer})
	if err != nil {
		return nil, nil, err
	}
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = sealer.Run(sctx) // it logs its failures and retries; it returns when stopped
	}()
	witnessDone := make(chan struct{})
	go func() {
		defer close(witnessDone)
		if witness != nil {
			_ = witness.Run(sctx) // it logs its failures and retries; it returns when stopped
		}
	}()
	return ledger, func() { cancel(); <-done; <-witnessDone }, nil
}

// loadAuditSigner loads the audit key (creating it when missing) that signs the checkpoints.
func loadAuditSigner(cfg config.Config) (note.Signer, error) {
	text, err := auth.LoadOrCreateAuditKey(cfg.AuditKeyPath())
	if err != nil {
		return nil, err
	}
	signer, _, err := audit.ParseAuditKey(text)
	return signer, err
}
