package commands

import (
	"context"

	"github.com/idlog/idlog/domain"
)

// WithdrawFromWallet takes standard coins out of a signed-in user's wallet, to be paid out; free
// coins are never withdrawable. Reference is the caller's (a payout id), optional.
type WithdrawFromWallet struct {
	Meta
	UID       domain.UserID
	Amount    int64
	Reference string
}

// WithdrawFromWalletHandler handles WithdrawFromWallet.
type WithdrawFromWalletHandler struct {
	users *UserStreams
	queue *UserQueue
}

// NewWithdrawFromWalletHandler returns the handler. queue is shared by the wallet handlers.
func NewWithdrawFromWalletHandler(users *UserStreams, queue *UserQueue) WithdrawFromWalletHandler {
	if users == nil || queue == nil {
		panic("commands: NewWithdrawFromWalletHandler needs users and a queue")
	}
	return WithdrawFromWalletHandler{users: users, queue: queue}
}

// Handle withdraws the coins. Fewer standard coins than Amount is domain.ErrInsufficientFunds,
// and nothing is taken; a user who is not active domain.ErrUserNotActive. With an idempotency key,
// a retry withdraws nothing and answers Replayed.
func (h WithdrawFromWalletHandler) Handle(ctx context.Context, cmd WithdrawFromWallet) (Result, error) {
	unlock, err := h.queue.lock(ctx, cmd.UID)
	if err != nil {
		return Result{}, err
	}
	defer unlock()
	o, err := h.users.update(ctx, cmd.UID, "WithdrawFromWallet", cmd.Meta, func(u *domain.User) (change, error) {
		events, err := u.Withdraw(cmd.Amount, cmd.Reference)
		return change{events: events}, err
	})
	if err == nil {
		err = replayedOn(o, cmd.UID)
	}
	if err != nil {
		return Result{}, err
	}
	return resultOf(o), nil
}
