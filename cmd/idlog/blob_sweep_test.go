package main

import (
	"context"
	"testing"
	"time"

	"github.com/idlog/idlog/internal/config"
)

// The blob sweeper waits for the KYC read model: not ready before it first ran, ready once it
// follows the log.
func TestKYCCaughtUpGatesTheSweeper(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg := config.Config{DataDir: t.TempDir(), RequestTimeout: 4 * time.Second}
	store, err := openStore(ctx, cfg, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	m, err := openReadModels(ctx, cfg, store, nil, discardLogger(), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer m.close()
	if err := m.kycCaughtUp(ctx); err == nil {
		t.Fatal("ready before the kyc read model ever ran")
	}
	if err := m.runtime.Start(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for m.kycCaughtUp(ctx) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("never ready: %v", m.kycCaughtUp(ctx))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
