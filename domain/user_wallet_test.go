package domain_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/idlog/idlog/domain"
)

var (
	credit = func(b domain.Balance, amount int64, reason, ref string) cmd {
		return func(u *domain.User) ([]domain.Event, error) { return u.Credit(b, amount, reason, ref) }
	}
	spend = func(amount int64, ref string) cmd {
		return func(u *domain.User) ([]domain.Event, error) { return u.Spend(amount, ref) }
	}
	withdraw = func(amount int64, ref string) cmd {
		return func(u *domain.User) ([]domain.Event, error) { return u.Withdraw(amount, ref) }
	}
	free, standard = domain.BalanceFree, domain.BalanceStandard

	// Every case starts from a sign-up bonus of 100 free coins; deposit adds 50 standard ones.
	deposit50 = credit(standard, 50, "deposit", "pay-1")
)

func registerWithBonus(t *testing.T) *domain.User {
	t.Helper()
	u, events, err := domain.Register(domain.NewUser{ID: uid, Email: "alice@example.com", PasswordHash: hash1, SignupBonus: 100})
	if err != nil {
		t.Fatal(err)
	}
	want := []domain.Event{
		domain.UserRegistered{UserID: uid, Email: "alice@example.com", PasswordHash: hash1, Role: domain.RoleMember},
		domain.WalletCredited{Balance: free, Amount: 100, Reason: domain.WalletReasonSignupBonus},
	}
	if !reflect.DeepEqual(events, want) {
		t.Fatalf("Register with a bonus = %#v, want %#v", events, want)
	}
	return u
}

func debit(b domain.Balance, amount int64, reason, ref string) domain.WalletDebited {
	return domain.WalletDebited{Balance: b, Amount: amount, Reason: reason, Reference: ref}
}

func wallet(free, standard int64) func(t *testing.T, u *domain.User) {
	return func(t *testing.T, u *domain.User) {
		t.Helper()
		mustBe(t, "wallet", u.Wallet(), domain.Wallet{Free: free, Standard: standard})
	}
}

func TestWalletCommands(t *testing.T) {
	t.Parallel()
	runCases(t, registerWithBonus, []commandCase{
		// Credits.
		{name: "credit standard", when: deposit50,
			want: []domain.Event{domain.WalletCredited{Balance: standard, Amount: 50, Reason: "deposit", Reference: "pay-1"}}, check: wallet(100, 50)},
		{name: "credit free", when: credit(free, 7, "promo-2025", ""), check: wallet(107, 0)},
		{name: "credit a locked user", given: []cmd{changeState(domain.StateLocked, "", at(0))}, when: deposit50, check: wallet(100, 50)},
		{name: "credit zero", when: credit(standard, 0, "deposit", ""), wantErr: domain.ErrAmountInvalid},
		{name: "credit a negative amount", when: credit(standard, -5, "deposit", ""), wantErr: domain.ErrAmountInvalid},
		{name: "credit more than MaxCoins", when: credit(standard, domain.MaxCoins+1, "deposit", ""), wantErr: domain.ErrAmountInvalid},
		{name: "credit up to MaxCoins", when: credit(free, domain.MaxCoins-100, "deposit", ""), check: wallet(domain.MaxCoins, 0)},
		{name: "credit past MaxCoins", when: credit(free, domain.MaxCoins-99, "deposit", ""), wantErr: domain.ErrAmountInvalid},
		{name: "credit no balance", when: credit(domain.Balance{}, 5, "deposit", ""), wantErr: domain.ErrBalanceInvalid},
		{name: "credit without reason", when: credit(standard, 5, "", ""), wantErr: domain.ErrWalletReasonInvalid},
		{name: "credit with a free-text reason", when: credit(standard, 5, "a nice gift", ""), wantErr: domain.ErrWalletReasonInvalid},
		{name: "credit with a long reference", when: credit(standard, 5, "deposit", strings.Repeat("r", 256)), wantErr: domain.ErrWalletReferenceInvalid},
		{name: "credit with a control character in the reference", when: credit(standard, 5, "deposit", "a\tb"), wantErr: domain.ErrWalletReferenceInvalid},

		// Spending.
		{name: "spend from free only", when: spend(30, "order-1"),
			want: []domain.Event{debit(free, 30, "spend", "order-1")}, check: wallet(70, 0)},
		{name: "spend free first, then standard", given: []cmd{deposit50}, when: spend(120, "order-2"),
			want: []domain.Event{debit(free, 100, "spend", "order-2"), debit(standard, 20, "spend", "order-2")}, check: wallet(0, 30)},
		{name: "spend standard when free is empty", given: []cmd{deposit50, spend(100, "")}, when: spend(50, ""),
			want: []domain.Event{debit(standard, 50, "spend", "")}, check: wallet(0, 0)},
		{name: "spend everything", given: []cmd{deposit50}, when: spend(150, ""), check: wallet(0, 0)},
		{name: "spend one more than held", given: []cmd{deposit50}, when: spend(151, ""), wantErr: domain.ErrInsufficientFunds},
		{name: "spend from an empty wallet", given: []cmd{spend(100, "")}, when: spend(1, ""), wantErr: domain.ErrInsufficientFunds},
		{name: "spend zero", when: spend(0, ""), wantErr: domain.ErrAmountInvalid},
		{name: "spend a negative amount", when: spend(-1, ""), wantErr: domain.ErrAmountInvalid},
		{name: "spend the largest amount", when: spend(domain.MaxCoins, ""), wantErr: domain.ErrInsufficientFunds},
		{name: "spend with a bad reference", when: spend(1, "a\x00"), wantErr: domain.ErrWalletReferenceInvalid},
		{name: "spend when banned", given: []cmd{ban}, when: spend(1, ""), wantErr: domain.ErrUserNotActive},

		// Withdrawals.
		{name: "withdraw standard", given: []cmd{deposit50}, when: withdraw(20, "iban-1"),
			want: []domain.Event{debit(standard, 20, "withdrawal", "iban-1")}, check: wallet(100, 30)},
		{name: "withdraw never takes free coins", given: []cmd{deposit50}, when: withdraw(51, ""), wantErr: domain.ErrInsufficientFunds},
		{name: "withdraw with only free coins", when: withdraw(1, ""), wantErr: domain.ErrInsufficientFunds},
		{name: "withdraw zero", given: []cmd{deposit50}, when: withdraw(0, ""), wantErr: domain.ErrAmountInvalid},
		{name: "withdraw when deleted", given: []cmd{deposit50, deleteUser(at(0))}, when: withdraw(1, ""), wantErr: domain.ErrUserNotActive},
	})
}

func TestSignupBonus(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		bonus   int64
		events  int
		wantErr error
	}{
		{bonus: 0, events: 1},
		{bonus: 1, events: 2},
		{bonus: domain.MaxCoins, events: 2},
		{bonus: -1, wantErr: domain.ErrInvalidArgument},
		{bonus: domain.MaxCoins + 1, wantErr: domain.ErrAmountInvalid},
	} {
		u, events, err := domain.Register(domain.NewUser{ID: uid, Email: "alice@example.com", PasswordHash: hash1, SignupBonus: tc.bonus})
		if tc.wantErr != nil {
			if !errors.Is(err, tc.wantErr) || u != nil {
				t.Errorf("bonus %d: %v, %v; want %v", tc.bonus, u, err, tc.wantErr)
			}
			continue
		}
		if err != nil || len(events) != tc.events || u.Wallet() != (domain.Wallet{Free: tc.bonus}) {
			t.Errorf("bonus %d: events %v, err %v, wallet %+v", tc.bonus, types(events), err, u.Wallet())
		}
	}
}

func TestBalance(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"free", "standard"} {
		b, err := domain.ParseBalance(name)
		if err != nil || b.String() != name {
			t.Errorf("ParseBalance(%q) = %v, %v", name, b, err)
		}
		var back domain.Balance
		text, err := b.MarshalText()
		if err != nil || back.UnmarshalText(text) != nil || back != b {
			t.Errorf("%s does not round-trip as text: %s, %v", name, text, err)
		}
	}
	for _, name := range []string{"", "Free", "bonus"} {
		if _, err := domain.ParseBalance(name); !errors.Is(err, domain.ErrBalanceInvalid) {
			t.Errorf("ParseBalance(%q) = %v, want ErrBalanceInvalid", name, err)
		}
	}
	if _, err := (domain.Balance{}).MarshalText(); !errors.Is(err, domain.ErrBalanceInvalid) {
		t.Errorf("zero balance marshals: %v", err)
	}
}
