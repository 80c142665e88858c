package courier

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	mail "github.com/wneessen/go-mail"
)

// Envelope is a message ready for a sender: rendered, with its recipient and its idempotent send
// key (ID, the same on every attempt).
type Envelope struct {
	ID        uuid.UUID
	Kind      string
	Channel   string
	UID       string
	To        string
	Token     string // the one-shot code, for senders that hand it off raw (NATS)
	CreatedAt time.Time
	Rendered
}

// MessageID is the e-mail Message-ID of the envelope: the same for every attempt, so a mail
// provider that dedups by it delivers a message retried after a crash once.
func (e Envelope) MessageID() string { return e.ID.String() + "@idlog" }

// Sender delivers envelopes of one channel. Send returns nil once the message is accepted (the
// courier then deletes it); an error makes the courier retry it later with the same envelope.
// Implementations are safe for concurrent use.
type Sender interface {
	Send(ctx context.Context, e Envelope) error
}

// newMail builds the e-mail of e, from the address from, with the given transfer encoding.
func newMail(from string, e Envelope, enc mail.Encoding) (*mail.Msg, error) {
	m := mail.NewMsg(mail.WithEncoding(enc))
	if err := m.From(from); err != nil {
		return nil, fmt.Errorf("courier: from address %q: %w", from, err)
	}
	if err := m.To(e.To); err != nil {
		return nil, fmt.Errorf("courier: recipient of message %s: %w", e.ID, err)
	}
	m.Subject(e.Subject)
	m.SetMessageIDWithValue(e.MessageID())
	if e.CreatedAt.IsZero() {
		m.SetDate()
	} else {
		m.SetDateWithValue(e.CreatedAt)
	}
	m.SetGenHeader("X-Idlog-Kind", e.Kind)
	m.SetBodyString(mail.TypeTextPlain, e.Text)
	if e.HTML != "" {
		m.AddAlternativeString(mail.TypeTextHTML, e.HTML)
	}
	return m, nil
}
