package courier

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/idlog/idlog/auth"
	"github.com/idlog/idlog/commands"
	"github.com/idlog/idlog/eventstore"
)

// Channels of a message.
const (
	ChannelEmail = "email"
	ChannelSMS   = "sms"
)

// Payload is the sealed part of an outbox row: whom to reach and what only they may read.
type Payload struct {
	To     string            `json:"to"`
	Locale string            `json:"locale,omitempty"`
	Token  string            `json:"token,omitempty"`
	Data   map[string]string `json:"data,omitempty"`
}

// Outbox seals commands' messages for the outbox table with the secret key; it implements
// commands.Outbox. The sealed payload is bound to the message id: a payload copied onto another
// row does not open.
type Outbox struct {
	Sealer *auth.Sealer
}

// Seal implements commands.Outbox.
func (o Outbox) Seal(m commands.Message) (eventstore.OutboxMessage, error) {
	if m.Channel == "" {
		m.Channel = ChannelEmail
	}
	if m.ID == uuid.Nil {
		return eventstore.OutboxMessage{}, fmt.Errorf("courier: message of kind %q has no id", m.Kind)
	}
	sealed, err := o.seal(m.ID, Payload{To: m.To, Locale: m.Locale, Token: m.Token, Data: m.Data})
	if err != nil {
		return eventstore.OutboxMessage{}, err
	}
	return eventstore.OutboxMessage{ID: m.ID, Kind: m.Kind, Channel: m.Channel, UID: m.UID, Sealed: sealed,
		CreatedAt: m.CreatedAt, ExpiresAt: m.ExpiresAt}, nil
}

// Message returns an outbox message of kind for channel, sealed, to queue with an append: what
// Seal does for commands, for other producers (and tests).
func (o Outbox) Message(kind, channel, uid string, p Payload, ttl time.Duration) (eventstore.OutboxMessage, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return eventstore.OutboxMessage{}, err
	}
	now := time.Now()
	sealed, err := o.seal(id, p)
	if err != nil {
		return eventstore.OutboxMessage{}, err
	}
	return eventstore.OutboxMessage{ID: id, Kind: kind, Channel: channel, UID: uid, Sealed: sealed, CreatedAt: now, ExpiresAt: now.Add(ttl)}, nil
}

func (o Outbox) seal(id uuid.UUID, p Payload) ([]byte, error) {
	plain, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("courier: encode payload: %w", err)
	}
	return o.Sealer.Seal(plain, id[:]), nil
}

// open returns the payload of the row id.
func (o Outbox) open(id uuid.UUID, sealed []byte) (Payload, error) {
	plain, err := o.Sealer.Open(sealed, id[:])
	if err != nil {
		return Payload{}, fmt.Errorf("courier: open message %s: %w", id, err)
	}
	var p Payload
	if err := json.Unmarshal(plain, &p); err != nil {
		return Payload{}, fmt.Errorf("courier: decode message %s: %w", id, err)
	}
	return p, nil
}
