package main

import (
	"context"
	"log/slog"

	"github.com/idlog/idlog/blobs"
)

// startBlobSweeper runs a sweeper of the documents' files that no document of an open account
// names (an upload refused after its file was stored, a closed account's files) until the read
// models close. It returns nil if the store cannot list and delete.
func startBlobSweeper(m *readModels, store blobs.Store, log *slog.Logger) *blobs.Sweeper {
	sweepable, ok := store.(blobs.Sweepable)
	if !ok {
		return nil
	}
	s, err := blobs.NewSweeper(blobs.SweeperOptions{Store: sweepable, Refs: m.kyc, Logger: log})
	if err != nil {
		log.Error("no blob sweeper", "error", err)
		return nil
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Run(ctx)
	}()
	m.stopSweeper = func() {
		stop()
		<-done
	}
	return s
}
