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

// LogNotifier logs that a code was sent, to whom, and never the code, then hands it to Next. With
// no Next it is the development Notifier: nobody receives the code, so the flows that need it
// cannot be completed with it alone.
type LogNotifier struct {
	Logger *slog.Logger
	Next   Notifier
}

// Notify hands the code to Next, if any, then logs "email code sent" with the kind and, in the
// attribute "to" (personal data: logprivacy can drop it), the address.
func (n LogNotifier) Notify(ctx context.Context, kind, to string, payload map[string]string) error {
	if n.Next != nil {
		if err := n.Next.Notify(ctx, kind, to, payload); err != nil {
			return err
		}
	}
	if n.Logger != nil {
		n.Logger.LogAttrs(ctx, slog.LevelInfo, "email code sent", slog.String("kind", kind), slog.String("to", to))
	}
	return nil
}
