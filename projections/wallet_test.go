package projections_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/projections"
)

// walletLife registers a user with a sign-up bonus and runs random credits, spends and
// withdrawals through the domain, appending what it records. It returns the domain's final
// wallet, the last position and how many movements were recorded.
func walletLife(t *testing.T, s eventstore.Store, uid string, steps int, rnd *rand.Rand) (domain.Wallet, uint64, int) {
	t.Helper()
	u, events, err := domain.Register(domain.NewUser{
		ID: domain.UserID(uid), Email: strings.ToLower(uid) + "@example.com", SignupBonus: 100,
		PasswordHash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
	})
	if err != nil {
		t.Fatal(err)
	}
	system := eventstore.Metadata{ActorUID: eventstore.ActorSystem}
	last := appendTo(t, s, uid, system, events...).LastPosition
	movements := 1
	accountant := eventstore.Metadata{ActorUID: newUID(), ActorRole: "accountant"}
	for range steps {
		meta := userMeta(uid)
		var evs []domain.Event
		switch rnd.IntN(3) {
		case 0:
			meta = accountant
			evs, err = u.Credit(domain.BalanceStandard, int64(1+rnd.IntN(50)), "deposit", "pay")
		case 1:
			evs, err = u.Spend(int64(1+rnd.IntN(60)), "order")
		default:
			evs, err = u.Withdraw(int64(1+rnd.IntN(30)), "iban")
		}
		if errors.Is(err, domain.ErrInsufficientFunds) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		last = appendTo(t, s, uid, meta, evs...).LastPosition
		movements += len(evs)
	}
	return u.Wallet(), last, movements
}

func TestWalletView(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, b backend) {
		e := b.open(t, envOptions{})
		wallet := projections.NewWalletView(e.db, e.dialect)
		r := start(t, e.runtime(t, projections.Options{BatchSize: 7}, wallet))
		ctx := context.Background()

		rnd := rand.New(rand.NewPCG(7, 11))
		uids := []string{newUID(), newUID(), newUID()}
		want := map[string]domain.Wallet{}
		moves := map[string]int{}
		var last uint64
		for _, uid := range uids {
			want[uid], last, moves[uid] = walletLife(t, e.store, uid, 60, rnd)
		}
		waitFor(t, r, last)

		for _, uid := range uids {
			got, err := wallet.Balances(ctx, uid)
			if err != nil {
				t.Fatal(err)
			}
			if got.Free != want[uid].Free || got.Standard != want[uid].Standard || got.UpdatedAt.IsZero() {
				t.Errorf("%s: balances %+v, the domain says %+v", uid, got, want[uid])
			}
			// Newest first, every page, adding up to the balances.
			var all []projections.Movement
			for p := 1; ; p++ {
				page, total, err := wallet.Movements(ctx, projections.MovementFilter{UID: uid, Page: p, Limit: 10})
				if err != nil {
					t.Fatal(err)
				}
				if total != moves[uid] {
					t.Fatalf("%s: total %d movements, want %d", uid, total, moves[uid])
				}
				if len(page) == 0 {
					break
				}
				all = append(all, page...)
			}
			if len(all) != moves[uid] {
				t.Fatalf("%s: pages hold %d movements, want %d", uid, len(all), moves[uid])
			}
			var sum domain.Wallet
			for i, m := range all {
				if i > 0 && m.ID >= all[i-1].ID {
					t.Fatalf("movements not newest first: %d after %d", m.ID, all[i-1].ID)
				}
				if m.Balance == "free" {
					sum.Free += m.Amount
				} else {
					sum.Standard += m.Amount
				}
			}
			if sum != want[uid] {
				t.Errorf("%s: movements add up to %+v, want %+v", uid, sum, want[uid])
			}
			first := all[len(all)-1]
			if first.Reason != domain.WalletReasonSignupBonus || first.Amount != 100 || first.Balance != "free" || first.ActorUID != eventstore.ActorSystem {
				t.Errorf("%s: first movement %+v, want the sign-up bonus", uid, first)
			}
		}

		// The invariant over the whole table: every balance is the sum of its movements.
		var mismatches int
		if err := e.db.Get(&mismatches, `SELECT count(*) FROM wallets w WHERE w.generation = (SELECT live FROM projection_generations WHERE name = 'wallet')
			AND (w.free <> (SELECT coalesce(sum(amount), 0) FROM wallet_movements m WHERE m.generation = w.generation AND m.uid = w.uid AND m.balance = 'free')
			  OR w.standard <> (SELECT coalesce(sum(amount), 0) FROM wallet_movements m WHERE m.generation = w.generation AND m.uid = w.uid AND m.balance = 'standard'))`); err != nil {
			t.Fatal(err)
		}
		if mismatches != 0 {
			t.Errorf("%d wallets differ from the sum of their movements", mismatches)
		}

		if got, err := wallet.Balances(ctx, newUID()); err != nil || got != (projections.Balances{}) {
			t.Errorf("balances of nobody = %+v, %v; want zero", got, err)
		}
		for _, f := range []projections.MovementFilter{{}, {UID: uids[0], Limit: -1}} {
			if _, _, err := wallet.Movements(ctx, f); !errors.Is(err, projections.ErrInvalidFilter) {
				t.Errorf("Movements(%+v) = %v, want ErrInvalidFilter", f, err)
			}
		}

		before, _, err := wallet.Movements(ctx, projections.MovementFilter{UID: uids[1], Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Rebuild(ctx, projections.WalletProjector); err != nil {
			t.Fatal(err)
		}
		after, _, err := wallet.Movements(ctx, projections.MovementFilter{UID: uids[1], Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(before, after) {
			t.Error("a rebuild changed the movements")
		}
		if got, _ := wallet.Balances(ctx, uids[1]); got.Free != want[uids[1]].Free || got.Standard != want[uids[1]].Standard {
			t.Errorf("after a rebuild: %+v, want %+v", got, want[uids[1]])
		}
	})
}

// A debit the domain would never record (more than the balance) stops the projector at that event:
// no negative balance is ever shown.
func TestWalletViewNeverGoesNegative(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, b backend) {
		e := b.open(t, envOptions{})
		wallet := projections.NewWalletView(e.db, e.dialect)
		r := start(t, e.runtime(t, projections.Options{}, wallet))
		ctx := context.Background()
		uid := newUID()
		good := appendTo(t, e.store, uid, userMeta(uid), registered(uid, strings.ToLower(uid)+"@example.com", ""),
			domain.WalletCredited{Balance: domain.BalanceFree, Amount: 5, Reason: "signup_bonus"})
		appendTo(t, e.store, uid, userMeta(uid), domain.WalletDebited{Balance: domain.BalanceFree, Amount: 6, Reason: "spend"})
		waitFor(t, r, good.LastPosition)
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			st, err := r.Status(ctx)
			if err == nil && len(st) == 1 && st[0].LastError != "" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the projector reports no error: %+v, %v", st, err)
			}
		}
		if got, err := wallet.Balances(ctx, uid); err != nil || got.Free != 5 {
			t.Errorf("balances = %+v, %v; want the 5 free coins before the bad debit", got, err)
		}
	})
}
