package courier

import "context"

// Notifier is what HandOff hands messages to: eventbus.Notifier (the NATS notifications subject)
// is one.
type Notifier interface {
	Notify(ctx context.Context, kind, to string, payload map[string]string) error
}

// HandOff is a Sender for teams with their own mailer: it hands the kind, the address, the user
// id, the one-shot code and the idempotent send key to a Notifier instead of sending a message.
type HandOff struct{ Notifier Notifier }

// Send implements Sender.
func (h HandOff) Send(ctx context.Context, e Envelope) error {
	p := map[string]string{"uid": e.UID, "id": e.ID.String()}
	if e.Token != "" {
		p["token"] = e.Token
	}
	return h.Notifier.Notify(ctx, e.Kind, e.To, p)
}
