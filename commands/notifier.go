package commands

import (
	"context"
	"log/slog"
)

// Kinds of notification, the first argument of Notifier.Notify.
const (
	// NotifyEmailConfirmation carries payload["token"]: the one-shot token that confirms the
	// address it is sent to.
	NotifyEmailConfirmation = "email_confirmation"
	// NotifyPasswordReset carries payload["token"]: the one-shot token that resets the password.
	NotifyPasswordReset = "password_reset"
)

// Notifier hands one-shot codes to whatever delivers them (a mailer listening on NATS). The
// payload holds the plain code: an implementation must never log it or store it. Notify is
// called after the hash of the code is stored, and must be safe for concurrent use.
type Notifier interface {
	Notify(ctx context.Context, kind, to string, payload map[string]string) error
}

// LogNotifier is the development Notifier: it logs that a code was sent, to whom, and never the
// code. Nobody receives the code, so the flows that need it cannot be completed with it alone.
type LogNotifier struct{ Logger *slog.Logger }

// Notify logs "email code sent" with the kind and the address.
func (n LogNotifier) Notify(ctx context.Context, kind, to string, _ map[string]string) error {
	if n.Logger != nil {
		n.Logger.LogAttrs(ctx, slog.LevelInfo, "email code sent to "+to, slog.String("kind", kind), slog.String("to", to))
	}
	return nil
}
