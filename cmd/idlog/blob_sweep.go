package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/idlog/idlog/blobs"
	"github.com/idlog/idlog/projections"
)

// maxKYCLagForSweep is how far behind the log the KYC read model may be for a sweep: well under
// the sweeper's grace, so that a document appended before a file's grace began is in it.
const maxKYCLagForSweep = 60.0 // seconds

// kycCaughtUp is nil when the KYC read model has run and is less than maxKYCLagForSweep behind
// the log. Where its lag is unknown (EventStoreDB) it is never ready: no sweep.
func (m *readModels) kycCaughtUp(ctx context.Context) error {
	statuses, err := m.runtime.Status(ctx)
	if err != nil {
		return err
	}
	for _, st := range statuses {
		if st.Name != projections.KYCProjector {
			continue
		}
		switch {
		case st.Generation == 0 || st.LagEvents < 0:
			return errors.New("the kyc read model's lag is unknown")
		case st.State == projections.StateFailing || st.LagSeconds > maxKYCLagForSweep:
			return fmt.Errorf("the kyc read model is %s, %.0f s behind", st.State, st.LagSeconds)
		}
		return nil
	}
	return errors.New("no kyc read model")
}

// startBlobSweeper runs a sweeper of the documents' files that no document of an open account
// names (an upload refused after its file was stored, a closed account's files) until the read
// models close. It returns nil if the store cannot list and delete.
func startBlobSweeper(m *readModels, store blobs.Store, log *slog.Logger) *blobs.Sweeper {
	sweepable, ok := store.(blobs.Sweepable)
	if !ok {
		return nil
	}
	s, err := blobs.NewSweeper(blobs.SweeperOptions{Store: sweepable, Refs: m.kyc, Logger: log, Ready: m.kycCaughtUp})
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
