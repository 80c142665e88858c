package commands_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	_ "github.com/lib/pq"

	"github.com/idlog/idlog/commands"
	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/eventstore/eventstoretest"
	"github.com/idlog/idlog/eventstore/postgres"
	"github.com/idlog/idlog/lease"
)

// TestSpendsSpreadOverReplicasNeverConflict spreads 60 spends of one wallet over three replicas'
// applications on one PostgreSQL database, each with its own connections and queue: the user
// locks across replicas queue them, so none gives up with a conflict.
func TestSpendsSpreadOverReplicasNeverConflict(t *testing.T) {
	t.Parallel()
	apps, _ := postgresReplicas(t, 3, commands.Config{Wallet: commands.WalletConfig{SignupBonus: 100}})
	reg, err := apps[0].Commands.RegisterUser.Handle(t.Context(), commands.RegisterUser{Email: "spread@example.com", Password: strongPassword})
	if err != nil {
		t.Fatal(err)
	}
	uid := domain.UserID(reg.Account.UID)
	var ok atomic.Int32
	var wg sync.WaitGroup
	errs := make(chan error, 60)
	for i := range 60 {
		wg.Go(func() {
			_, err := apps[i%3].Commands.SpendFromWallet.Handle(t.Context(), commands.SpendFromWallet{
				Meta: commands.Meta{ActorUID: string(uid)}, UID: uid, Amount: 1, Reference: fmt.Sprintf("order-%d", i),
			})
			if err != nil {
				errs <- err
				return
			}
			ok.Add(1)
		})
	}
	wg.Wait()
	close(errs)
	conflicts := 0
	for err := range errs {
		if errors.Is(err, commands.ErrConflict) {
			conflicts++
			continue
		}
		t.Errorf("unexpected error: %v", err)
	}
	if conflicts != 0 || ok.Load() != 60 {
		t.Fatalf("%d spends succeeded, %d gave up with a conflict; want 60 and 0", ok.Load(), conflicts)
	}
}

// postgresReplicas is n applications on one PostgreSQL schema of their own, each with its own
// store, connections, caches and queue: n replicas; and the first one's store.
func postgresReplicas(t *testing.T, n int, cfg commands.Config) ([]commands.Application, *postgres.Store) {
	t.Helper()
	dsn := eventstoretest.PostgresSchema(t)
	hasher, sealer, signer := testSecrets(t, cheap, nil)
	var apps []commands.Application
	var first *postgres.Store
	for range n {
		store, err := postgres.Open(context.Background(), postgres.Options{DSN: dsn})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { store.Close() })
		if first == nil {
			first = store
		}
		app, err := commands.New(commands.Deps{
			Store: store, Keys: store, Registry: domain.NewEventRegistry(), Hasher: hasher, Sealer: sealer,
			Tokens: signer, Notifier: &mailbox{}, UserLocks: lease.NewUserLocks(store.DB().DB, 8), Attempts: newLimiter(t),
		}, cfg)
		if err != nil {
			t.Fatal(err)
		}
		apps = append(apps, app)
	}
	return apps, first
}
