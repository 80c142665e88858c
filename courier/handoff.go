package courier

import (
	"context"
	"encoding/base64"
	"fmt"

	"github.com/nats-io/nkeys"
)

// Notifier is what HandOff hands messages to: eventbus.Notifier (the NATS notifications subject)
// is one.
type Notifier interface {
	Notify(ctx context.Context, kind, to string, payload map[string]string) error
}

// HandOff is a Sender for teams with their own mailer: it hands the kind, the address, the user
// id, the one-shot code and the idempotent send key to a Notifier instead of sending a message.
type HandOff struct {
	Notifier Notifier
	// SealTo, when set, is the mailer's public curve key (an NATS xkey, "X..."): the code is then
	// handed over sealed to it, as sealed_token (base64 of nkeys' Seal) with sealed_by (the
	// public key of a key pair made for that one message, which Open needs), never as token.
	// Whoever else may read the subject reads no code.
	SealTo string
}

// Send implements Sender.
func (h HandOff) Send(ctx context.Context, e Envelope) error {
	p := map[string]string{"uid": e.UID, "id": e.ID.String()}
	if e.Token != "" {
		if h.SealTo == "" {
			p["token"] = e.Token
		} else {
			sealed, by, err := seal(e.Token, h.SealTo)
			if err != nil {
				return err
			}
			p["sealed_token"], p["sealed_by"] = sealed, by
		}
	}
	return h.Notifier.Notify(ctx, e.Kind, e.To, p)
}

// seal seals token to the curve key recipient with a new key pair, and returns the sealed bytes
// in base64 and the pair's public key.
func seal(token, recipient string) (sealed, sender string, err error) {
	kp, err := nkeys.CreateCurveKeys()
	if err != nil {
		return "", "", fmt.Errorf("courier: seal a code: %w", err)
	}
	defer kp.Wipe()
	b, err := kp.Seal([]byte(token), recipient)
	if err != nil {
		return "", "", fmt.Errorf("courier: seal a code to %s: %w", recipient, err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return "", "", fmt.Errorf("courier: seal a code: %w", err)
	}
	return base64.StdEncoding.EncodeToString(b), pub, nil
}
