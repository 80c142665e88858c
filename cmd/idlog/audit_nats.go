package main

import (
	"context"
	"fmt"
	"time"

	"github.com/idlog/idlog/audit"
	"github.com/idlog/idlog/eventbus"
	"github.com/idlog/idlog/internal/config"
)

// checkpointsFromNATS is the -checkpoint value that reads the checkpoints from NATS (a file of
// that name is given as ./nats).
const checkpointsFromNATS = "nats"

// openNATSCheckpoints reads every checkpoint idlog published to the IDLOG_AUDIT stream and opens
// each with vkey. One whose signature fails refuses them all, as for a file: a stream someone
// could write a forged checkpoint into proves nothing until that is explained.
func openNATSCheckpoints(ctx context.Context, cfg config.Config, vkey string) ([]audit.TreeHead, error) {
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
		// The embedded server of idlog serve: its reader's credentials, in the same data directory.
		opts.Credentials = eventbus.CredentialsFile(cfg.NATSCredentialsDir(), eventbus.UserReader)
	}
	nc, err := eventbus.Dial(opts)
	if err != nil {
		return nil, cfg.RedactError(err)
	}
	defer nc.Close()
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	notes, err := eventbus.ReadAuditCheckpoints(rctx, nc)
	if err != nil {
		return nil, cfg.RedactError(err)
	}
	if len(notes) == 0 {
		return nil, fmt.Errorf("stream %s holds no signed checkpoint", eventbus.AuditStream)
	}
	heads := make([]audit.TreeHead, 0, len(notes))
	for i, n := range notes {
		h, err := audit.OpenCheckpoint(n, vkey)
		if err != nil {
			return nil, fmt.Errorf("checkpoint %d of stream %s refused: %w", i+1, eventbus.AuditStream, err)
		}
		heads = append(heads, h)
	}
	return heads, nil
}
