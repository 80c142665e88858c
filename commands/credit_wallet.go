package commands

import (
	"context"

	"github.com/idlog/idlog/domain"
)

// CreditWallet adds coins to a user's balance: a deposit arriving from a payment provider, or a
// grant. Who may credit (administrators and accountants) is the API's check. Balance is "free" or
// "standard"; Reason a short code (deposit, refund, ...); Reference the caller's, optional.
type CreditWallet struct {
	Meta
	UID       domain.UserID
	Balance   string
	Amount    int64
	Reason    string
	Reference string
}

// CreditWalletHandler handles CreditWallet.
type CreditWalletHandler struct {
	users *UserStreams
	queue *UserQueue
}

// NewCreditWalletHandler returns the handler. queue is shared by the wallet handlers.
func NewCreditWalletHandler(users *UserStreams, queue *UserQueue) CreditWalletHandler {
	if users == nil || queue == nil {
		panic("commands: NewCreditWalletHandler needs users and a queue")
	}
	return CreditWalletHandler{users: users, queue: queue}
}

// Handle credits the coins, in any account state. Malformed input is domain.ErrBalanceInvalid,
// ErrAmountInvalid, ErrWalletReasonInvalid or ErrWalletReferenceInvalid. With an idempotency key,
// a retry credits nothing and answers Replayed; the key reused for another user is
// ErrIdempotencyKeyReused.
func (h CreditWalletHandler) Handle(ctx context.Context, cmd CreditWallet) (Result, error) {
	b, err := domain.ParseBalance(cmd.Balance)
	if err != nil {
		return Result{}, err
	}
	unlock, err := h.queue.lock(ctx, cmd.UID)
	if err != nil {
		return Result{}, err
	}
	defer unlock()
	o, err := h.users.update(ctx, cmd.UID, "CreditWallet", cmd.Meta, func(u *domain.User) (change, error) {
		events, err := u.Credit(b, cmd.Amount, cmd.Reason, cmd.Reference)
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
