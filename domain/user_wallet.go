package domain

import (
	"fmt"
	"strings"
)

// The coin wallet of the User: two balances in whole coins. Free coins are granted (the sign-up
// bonus) and can only be spent on the platform; standard coins are deposited and can be spent or
// withdrawn. Neither balance ever goes below zero, and neither above MaxCoins.

// MaxCoins bounds every amount and balance: 2^53-1, the largest integer a JSON number keeps exactly
// in a JavaScript client, so a balance never shows rounded.
const MaxCoins = 1<<53 - 1

// Reasons the wallet commands record. Credits from an administrator carry a reason of their own.
const (
	WalletReasonSignupBonus = "signup_bonus"
	WalletReasonSpend       = "spend"
	WalletReasonWithdrawal  = "withdrawal"
)

// Limits of wallet input.
const (
	minWalletReasonLen    = 3
	maxWalletReasonLen    = 64
	MaxWalletReferenceLen = 255
)

// Balance names one of the two balances of a wallet. The zero Balance is no balance.
type Balance struct{ name string }

// The balances.
var (
	BalanceFree     = Balance{"free"}
	BalanceStandard = Balance{"standard"}
)

// ParseBalance returns the balance named name.
func ParseBalance(name string) (Balance, error) {
	switch name {
	case BalanceFree.name:
		return BalanceFree, nil
	case BalanceStandard.name:
		return BalanceStandard, nil
	}
	return Balance{}, fmt.Errorf("%w: %q (want free or standard)", ErrBalanceInvalid, name)
}

func (b Balance) String() string { return b.name }

// IsZero reports whether b is no balance.
func (b Balance) IsZero() bool { return b.name == "" }

// MarshalText encodes the balance's name; the zero Balance cannot be encoded.
func (b Balance) MarshalText() ([]byte, error) {
	if b.IsZero() {
		return nil, fmt.Errorf("%w: zero balance", ErrBalanceInvalid)
	}
	return []byte(b.name), nil
}

// UnmarshalText decodes a balance name, refusing unknown ones.
func (b *Balance) UnmarshalText(text []byte) error {
	p, err := ParseBalance(string(text))
	if err != nil {
		return err
	}
	*b = p
	return nil
}

// Wallet is what a user holds, in whole coins.
type Wallet struct {
	Free     int64
	Standard int64
}

// WalletCredited: Amount coins were added to Balance. Reason says why (signup_bonus, deposit, ...);
// Reference is the caller's reference (a payment id, say), empty if none.
type WalletCredited struct {
	Balance   Balance `json:"balance"`
	Amount    int64   `json:"amount"`
	Reason    string  `json:"reason"`
	Reference string  `json:"reference,omitempty" personal:"true"`
}

// WalletDebited: Amount coins were taken from Balance. Reason says why (spend, withdrawal);
// Reference is the caller's reference (an order id, say), empty if none. A spend that takes from
// both balances records two WalletDebited, free first.
type WalletDebited struct {
	Balance   Balance `json:"balance"`
	Amount    int64   `json:"amount"`
	Reason    string  `json:"reason"`
	Reference string  `json:"reference,omitempty" personal:"true"`
}

func (WalletCredited) EventType() string { return "WalletCredited" }
func (WalletDebited) EventType() string  { return "WalletDebited" }

func checkAmount(amount int64) error {
	if amount <= 0 || amount > MaxCoins {
		return fmt.Errorf("%w: %d (want 1-%d whole coins)", ErrAmountInvalid, amount, int64(MaxCoins))
	}
	return nil
}

// checkWalletReason: 3-64 characters of [a-z0-9_-], a code rather than free text, so that
// movements can be grouped by it.
func checkWalletReason(r string) error {
	if len(r) < minWalletReasonLen || len(r) > maxWalletReasonLen {
		return fmt.Errorf("%w: %q must be %d-%d characters", ErrWalletReasonInvalid, r, minWalletReasonLen, maxWalletReasonLen)
	}
	for i := 0; i < len(r); i++ {
		if c := r[i]; !(isLowerAlnum(c) || c == '_' || c == '-') {
			return fmt.Errorf("%w: %q may hold only a-z, 0-9, '_' and '-'", ErrWalletReasonInvalid, r)
		}
	}
	return nil
}

// checkWalletReference: optional free text of at most 255 bytes, without control characters.
func checkWalletReference(r string) error {
	if len(r) > MaxWalletReferenceLen {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrWalletReferenceInvalid, len(r), MaxWalletReferenceLen)
	}
	if strings.ContainsFunc(r, isControl) {
		return fmt.Errorf("%w: holds a control character", ErrWalletReferenceInvalid)
	}
	return nil
}

// Credit adds amount coins to a balance, in any account state but closed (ErrAccountClosed): a
// deposit that arrives for a locked account must not be lost. Who may credit is the command layer's business (administrator
// and accountant roles, or the system). A balance that would pass MaxCoins is ErrAmountInvalid.
func (u *User) Credit(b Balance, amount int64, reason, reference string) ([]Event, error) {
	if err := u.requireOpen(); err != nil {
		return nil, err
	}
	if b.IsZero() {
		return nil, fmt.Errorf("%w: no balance", ErrBalanceInvalid)
	}
	if err := checkAmount(amount); err != nil {
		return nil, err
	}
	if err := checkWalletReason(reason); err != nil {
		return nil, err
	}
	if err := checkWalletReference(reference); err != nil {
		return nil, err
	}
	if cur := u.balance(b); amount > MaxCoins-cur {
		return nil, fmt.Errorf("%w: %s balance of %d plus %d would pass %d", ErrAmountInvalid, b, cur, amount, int64(MaxCoins))
	}
	return u.record(WalletCredited{Balance: b, Amount: amount, Reason: reason, Reference: reference}), nil
}

// Spend takes amount coins for something bought on the platform: free coins first, then standard
// ones, so it records one or two WalletDebited (reason spend). The user must be active; less than
// amount in both balances together is ErrInsufficientFunds, and nothing is taken.
func (u *User) Spend(amount int64, reference string) ([]Event, error) {
	if err := u.requireActive(); err != nil {
		return nil, err
	}
	if err := checkAmount(amount); err != nil {
		return nil, err
	}
	if err := checkWalletReference(reference); err != nil {
		return nil, err
	}
	// Each balance is at most MaxCoins, so the sum cannot overflow an int64.
	if have := u.wallet.Free + u.wallet.Standard; have < amount {
		return nil, fmt.Errorf("%w: spending %d, holding %d", ErrInsufficientFunds, amount, have)
	}
	var events []Event
	fromFree := min(amount, u.wallet.Free)
	if fromFree > 0 {
		events = append(events, WalletDebited{Balance: BalanceFree, Amount: fromFree, Reason: WalletReasonSpend, Reference: reference})
	}
	if rest := amount - fromFree; rest > 0 {
		events = append(events, WalletDebited{Balance: BalanceStandard, Amount: rest, Reason: WalletReasonSpend, Reference: reference})
	}
	return u.record(events...), nil
}

// Withdraw takes amount standard coins out of the platform (reason withdrawal); free coins are
// never withdrawable. The user must be active; less than amount standard coins is
// ErrInsufficientFunds, and nothing is taken.
func (u *User) Withdraw(amount int64, reference string) ([]Event, error) {
	if err := u.requireActive(); err != nil {
		return nil, err
	}
	if err := checkAmount(amount); err != nil {
		return nil, err
	}
	if err := checkWalletReference(reference); err != nil {
		return nil, err
	}
	if u.wallet.Standard < amount {
		return nil, fmt.Errorf("%w: withdrawing %d, holding %d standard coins", ErrInsufficientFunds, amount, u.wallet.Standard)
	}
	return u.record(WalletDebited{Balance: BalanceStandard, Amount: amount, Reason: WalletReasonWithdrawal, Reference: reference}), nil
}

// applyWallet changes the balances by one wallet event.
func (u *User) applyWallet(e Event) {
	switch e := e.(type) {
	case WalletCredited:
		*u.balancePtr(e.Balance) += e.Amount
	case WalletDebited:
		*u.balancePtr(e.Balance) -= e.Amount
	}
}

func (u *User) balancePtr(b Balance) *int64 {
	if b == BalanceStandard {
		return &u.wallet.Standard
	}
	return &u.wallet.Free
}

func (u *User) balance(b Balance) int64 { return *u.balancePtr(b) }

// Wallet is what the user holds.
func (u *User) Wallet() Wallet { return u.wallet }
