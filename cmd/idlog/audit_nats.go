package main

import (
	"context"
	"fmt"
	"time"

	"github.com/idlog/idlog/audit"
	"github.com/idlog/idlog/eventbus"
	"github.com/idlog/idlog/internal/config"
)

// natsCheckpoints reads the signed checkpoints that IDLOG_AUDIT holds (`audit verify -checkpoint
// nats`), as a reader: with the reader's credentials of the embedded server in the data directory,
// or the configured ones. Every signature must open with vkey, else all are refused.
func natsCheckpoints(ctx context.Context, cfg config.Config, vkey string) ([]audit.TreeHead, error) {
	url, err := natsClientURL(cfg)
	if err != nil {
		return nil, err
	}
	a := cfg.NATSAuth
	opts := eventbus.ClientOptions{
		URL: url, Name: "idlog audit verify", DialTimeout: 5 * time.Second,
		Credentials: a.Credentials, TLSCAFile: a.TLSCA, TLSCertFile: a.TLSCert, TLSKeyFile: a.TLSKey,
	}
	if cfg.NATSURL == "" {
		opts.Credentials = eventbus.CredentialsFile(cfg.NATSCredentialsDir(), eventbus.UserReader)
	}
	nc, err := eventbus.Dial(opts)
	if err != nil {
		return nil, cfg.RedactError(err)
	}
	defer nc.Close()
	cps, err := eventbus.ReadAuditCheckpoints(ctx, nc)
	if err != nil {
		return nil, cfg.RedactError(err)
	}
	var heads []audit.TreeHead
	for _, c := range cps {
		if c.Note == "" {
			continue // sealed before checkpoints were signed
		}
		h, err := audit.OpenCheckpoint([]byte(c.Note), vkey)
		if err != nil {
			return nil, fmt.Errorf("checkpoint of ordinal %d on NATS refused: %w", c.Ordinal, err)
		}
		heads = append(heads, h)
	}
	if len(heads) == 0 {
		return nil, fmt.Errorf("NATS (%s) holds no signed checkpoint", eventbus.AuditStream)
	}
	return heads, nil
}
