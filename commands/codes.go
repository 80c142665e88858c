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
}

func (c codeSender) send(ctx context.Context, kind, uid, to, token string) {
	if err := c.notifier.Notify(ctx, kind, to, map[string]string{"token": token, "uid": uid}); err != nil {
		c.log.LogAttrs(ctx, slog.LevelError, "hand-off of a one-shot code failed",
			slog.String("kind", kind), slog.String("uid", uid), slog.Any("error", err))
	}
}
