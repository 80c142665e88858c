package commands_test

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/idlog/idlog/commands"
	"github.com/idlog/idlog/domain"
)

func TestSignupBonus(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		bonus int64
		want  int64
	}{{0, commands.DefaultSignupBonus}, {7, 7}, {commands.NoSignupBonus, 0}} {
		e := newEnv(t, commands.Config{Wallet: commands.WalletConfig{SignupBonus: tc.bonus}})
		r := e.register(t, "bonus@example.com", "")
		if r.Account.Wallet != (domain.Wallet{Free: tc.want}) {
			t.Errorf("bonus %d: wallet %+v, want %d free coins", tc.bonus, r.Account.Wallet, tc.want)
		}
	}
}

func TestWalletCommands(t *testing.T) {
	t.Parallel()
	e := newEnv(t, commands.Config{})
	ctx := t.Context()
	uid := domain.UserID(e.register(t, "coins@example.com", "").Account.UID)
	accountant := commands.Meta{ActorUID: "ID00000000AC", ActorRole: "accountant"}
	self := commands.Meta{ActorUID: string(uid), ActorRole: "member"}

	r, err := e.app.Commands.CreditWallet.Handle(ctx, commands.CreditWallet{Meta: accountant, UID: uid, Balance: "standard", Amount: 40, Reason: "deposit", Reference: "psp-1"})
	if err != nil || r.Account.Wallet != (domain.Wallet{Free: 100, Standard: 40}) {
		t.Fatalf("credit = %+v, %v", r.Account.Wallet, err)
	}
	r, err = e.app.Commands.SpendFromWallet.Handle(ctx, commands.SpendFromWallet{Meta: self, UID: uid, Amount: 110, Reference: "order-1"})
	if err != nil || r.Account.Wallet != (domain.Wallet{Free: 0, Standard: 30}) {
		t.Fatalf("spend = %+v, %v", r.Account.Wallet, err)
	}
	_, err = e.app.Commands.WithdrawFromWallet.Handle(ctx, commands.WithdrawFromWallet{Meta: self, UID: uid, Amount: 31})
	wantErr(t, "withdraw too much", err, domain.ErrInsufficientFunds)
	_, err = e.app.Commands.SpendFromWallet.Handle(ctx, commands.SpendFromWallet{Meta: self, UID: uid, Amount: 31})
	wantErr(t, "spend too much", err, domain.ErrInsufficientFunds)
	r, err = e.app.Commands.WithdrawFromWallet.Handle(ctx, commands.WithdrawFromWallet{Meta: self, UID: uid, Amount: 30, Reference: "iban"})
	if err != nil || r.Account.Wallet != (domain.Wallet{}) {
		t.Fatalf("withdraw = %+v, %v", r.Account.Wallet, err)
	}
	for _, tc := range []struct {
		cmd  commands.CreditWallet
		want error
	}{
		{commands.CreditWallet{UID: uid, Balance: "gold", Amount: 1, Reason: "deposit"}, domain.ErrBalanceInvalid},
		{commands.CreditWallet{UID: uid, Balance: "free", Amount: 0, Reason: "deposit"}, domain.ErrAmountInvalid},
		{commands.CreditWallet{UID: uid, Balance: "free", Amount: 1, Reason: "x"}, domain.ErrWalletReasonInvalid},
		{commands.CreditWallet{UID: "ID00000000FF", Balance: "free", Amount: 1, Reason: "deposit"}, commands.ErrUserNotFound},
		{commands.CreditWallet{UID: "nope", Balance: "free", Amount: 1, Reason: "deposit"}, commands.ErrCommandInvalid},
	} {
		_, err := e.app.Commands.CreditWallet.Handle(ctx, tc.cmd)
		wantErr(t, fmt.Sprintf("credit %+v", tc.cmd), err, tc.want)
	}

	events := e.events(t, string(uid))
	want := []string{"UserRegistered", "WalletCredited", "EmailVerificationRequested", "WalletCredited", "WalletDebited", "WalletDebited", "WalletDebited"}
	if got := types(events); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("events %v, want %v", got, want)
	}
	if md := events[3].Metadata; md.ActorUID != accountant.ActorUID || md.ActorRole != "accountant" {
		t.Errorf("credit metadata = %+v, want the accountant", md)
	}
}

// 100 spends of 1 coin race against a balance of 50: exactly 50 succeed, the others find the
// wallet empty, and the stream never holds a spend beyond the balance.
func TestConcurrentSpends(t *testing.T) {
	t.Parallel()
	e := newEnv(t, commands.Config{Wallet: commands.WalletConfig{SignupBonus: 50}})
	uid := domain.UserID(e.register(t, "hot@example.com", "").Account.UID)
	var ok, broke atomic.Int32
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 100 {
		wg.Go(func() {
			_, err := e.app.Commands.SpendFromWallet.Handle(t.Context(), commands.SpendFromWallet{
				Meta: commands.Meta{ActorUID: string(uid)}, UID: uid, Amount: 1, Reference: fmt.Sprintf("order-%d", i),
			})
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, domain.ErrInsufficientFunds):
				broke.Add(1)
			default:
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("unexpected error: %v", err)
	}
	if ok.Load() != 50 || broke.Load() != 50 {
		t.Errorf("%d spends succeeded and %d found no funds, want 50 and 50", ok.Load(), broke.Load())
	}
	// Replay the stream: the balance after every event is never negative, and ends at 0.
	var history []domain.Event
	reg := domain.NewEventRegistry()
	for _, ev := range e.events(t, string(uid)) {
		d, err := reg.Decode(ev.Type, ev.SchemaVersion, ev.Data)
		if err != nil {
			t.Fatal(err)
		}
		history = append(history, d)
		u, err := domain.RehydrateUser(history)
		if err != nil {
			t.Fatal(err)
		}
		if w := u.Wallet(); w.Free < 0 || w.Standard < 0 {
			t.Fatalf("negative wallet %+v at version %d", w, len(history))
		}
	}
	if u, _ := domain.RehydrateUser(history); u.Wallet() != (domain.Wallet{}) {
		t.Errorf("final wallet %+v, want empty", u.Wallet())
	}
}

// One credit retried 20 times at once with one idempotency key credits once; every retry answers
// as a replay. The key used by the same accountant for another user is refused.
func TestCreditIdempotent(t *testing.T) {
	t.Parallel()
	e := newEnv(t, commands.Config{Wallet: commands.WalletConfig{SignupBonus: commands.NoSignupBonus}})
	uid := domain.UserID(e.register(t, "retry@example.com", "").Account.UID)
	other := domain.UserID(e.register(t, "other@example.com", "").Account.UID)
	meta := commands.Meta{ActorUID: "ID00000000AC", ActorRole: "accountant", IdempotencyKey: "psp-payment-42"}
	cmd := commands.CreditWallet{Meta: meta, UID: uid, Balance: "standard", Amount: 25, Reason: "deposit", Reference: "psp-42"}
	var wg sync.WaitGroup
	var replays atomic.Int32
	for range 20 {
		wg.Go(func() {
			r, err := e.app.Commands.CreditWallet.Handle(t.Context(), cmd)
			if err != nil {
				t.Error(err)
				return
			}
			if r.Replayed {
				replays.Add(1)
			}
			if r.Account.Wallet.Standard != 25 {
				t.Errorf("answer shows %d standard coins, want 25", r.Account.Wallet.Standard)
			}
		})
	}
	wg.Wait()
	if replays.Load() != 19 {
		t.Errorf("%d replays, want 19", replays.Load())
	}
	var credits int
	for _, ev := range e.events(t, string(uid)) {
		if ev.Type == "WalletCredited" {
			credits++
			if ev.Metadata.IdempotencyKey != meta.IdempotencyKey {
				t.Errorf("metadata %+v does not carry the key", ev.Metadata)
			}
		}
	}
	if credits != 1 {
		t.Errorf("%d credits stored, want 1", credits)
	}

	cmd.UID = other
	_, err := e.app.Commands.CreditWallet.Handle(t.Context(), cmd)
	wantErr(t, "the key on another user", err, commands.ErrIdempotencyKeyReused)
	for _, ev := range e.events(t, string(other)) {
		if ev.Type == "WalletCredited" {
			t.Error("the other user was credited")
		}
	}

	// A spend with a key already used by a finished spend appends nothing, even once the wallet
	// changed since.
	self := commands.Meta{ActorUID: string(uid), IdempotencyKey: "buy-1"}
	first, err := e.app.Commands.SpendFromWallet.Handle(t.Context(), commands.SpendFromWallet{Meta: self, UID: uid, Amount: 5})
	if err != nil || first.Replayed {
		t.Fatal(first, err)
	}
	if _, err := e.app.Commands.SpendFromWallet.Handle(t.Context(), commands.SpendFromWallet{Meta: commands.Meta{ActorUID: string(uid)}, UID: uid, Amount: 5}); err != nil {
		t.Fatal(err)
	}
	again, err := e.app.Commands.SpendFromWallet.Handle(t.Context(), commands.SpendFromWallet{Meta: self, UID: uid, Amount: 5})
	if err != nil || !again.Replayed || again.Account.Wallet.Standard != 15 {
		t.Errorf("retried spend = %+v, %v; want a replay showing 15 coins", again, err)
	}
}
