package commands

import (
	"context"
	"log/slog"
)

// codeSender hands one-shot tokens to the Notifier after their hash is stored. A failed hand-off
// is logged (never with the token) and does not fail the command: the event is stored, and the
// user can ask for another code.
type codeSender struct {
	notifier Notifier
	log      *slog.Logger
	// users, when they queue messages in the outbox (UseOutbox), have sent the code already.
	users *UserStreams
}

func newCodeSender(users *UserStreams, notifier Notifier, codes CodesConfig) codeSender {
	return codeSender{notifier: notifier, log: codes.logger(), users: users}
}

func (c codeSender) send(ctx context.Context, kind, uid, to, token string) {
	if c.users != nil && c.users.queuesMessages() {
		return // in the outbox, with the event
	}
	if err := c.notifier.Notify(ctx, kind, to, map[string]string{"token": token, "uid": uid}); err != nil {
		c.log.LogAttrs(ctx, slog.LevelError, "hand-off of a one-shot code failed",
			slog.String("kind", kind), slog.String("uid", uid), slog.Any("error", err))
	}
}
