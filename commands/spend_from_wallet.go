package commands

import (
	"context"

	"github.com/idlog/idlog/domain"
)

// SpendFromWallet takes coins from a signed-in user's wallet for something bought on the
// platform: free coins first, then standard ones. Reference is the caller's (an order id), optional.
type SpendFromWallet struct {
	Meta
	UID       domain.UserID
	Amount    int64
	Reference string
}

// SpendFromWalletHandler handles SpendFromWallet.
type SpendFromWalletHandler struct {
	users *UserStreams
	queue *UserQueue
}

// NewSpendFromWalletHandler returns the handler. queue is shared by the wallet handlers.
func NewSpendFromWalletHandler(users *UserStreams, queue *UserQueue) SpendFromWalletHandler {
	if users == nil || queue == nil {
		panic("commands: NewSpendFromWalletHandler needs users and a queue")
	}
	return SpendFromWalletHandler{users: users, queue: queue}
}

// Handle spends the coins. Fewer coins than Amount in both balances together is
// domain.ErrInsufficientFunds, and nothing is taken; a user who is not active
// domain.ErrUserNotActive. With an idempotency key, a retry spends nothing and answers Replayed.
func (h SpendFromWalletHandler) Handle(ctx context.Context, cmd SpendFromWallet) (Result, error) {
	unlock, err := h.queue.lock(ctx, cmd.UID)
	if err != nil {
		return Result{}, err
	}
	defer unlock()
	o, err := h.users.update(ctx, cmd.UID, "SpendFromWallet", cmd.Meta, func(u *domain.User) (change, error) {
		events, err := u.Spend(cmd.Amount, cmd.Reference)
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
