package commands

import (
	"time"

	"github.com/google/uuid"

	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/eventstore"
)

// Kinds of security notice: messages with no secret that tell a user of a change to their account.
const (
	NoticePasswordChanged = "password_changed"
	NoticeOTPDisabled     = "otp_disabled"
	// NoticeEmailChanged goes to the old address, so its owner learns that the account moved.
	NoticeEmailChanged = "email_changed"
	// NoticeNewSignIn: a sign-in from a client address the login had not signed in from lately
	// (the attempt limiter's known addresses); it tells the address and the user agent.
	NoticeNewSignIn = "new_sign_in"
)

// DefaultNoticeTTL is how long an undelivered security notice is kept before it is dropped.
const DefaultNoticeTTL = 7 * 24 * time.Hour

// Message is a message to a person that a command's change causes: a one-shot code to deliver,
// or a security notice. With an Outbox it is sealed and stored in the same transaction as the
// change's events, so it is delivered if and only if they are stored.
type Message struct {
	ID      uuid.UUID
	Kind    string
	Channel string // "email" or "sms"
	UID     string
	To      string
	Locale  string // the user's profile locale, "" if none
	// Token is the plain one-shot code: it only ever exists sealed.
	Token     string
	Data      map[string]string // what the template may say besides (the new address, ...)
	CreatedAt time.Time
	ExpiresAt time.Time
}

// Outbox seals messages for the store's outbox table (courier.Outbox is one). Seal must bind the
// sealed payload to the message id.
type Outbox interface {
	Seal(m Message) (eventstore.OutboxMessage, error)
}

// QueueWatcher is an Outbox told when an append with messages committed, so that a courier of
// this process can deliver them at once instead of at its next poll.
type QueueWatcher interface {
	Queued()
}

// newMessage is an e-mail of kind to the user's address (to, when given), valid until expires.
func newMessage(u *domain.User, kind, to, token string, now, expires time.Time, data map[string]string) Message {
	if to == "" {
		to = u.Email()
	}
	locale := ""
	if p, _, ok := u.Profile(); ok {
		locale = p.Locale
	}
	id, _ := uuid.NewV7() // fails only if crypto/rand does, which panics since Go 1.24
	return Message{ID: id, Kind: kind, Channel: "email", UID: string(u.ID()), To: to, Locale: locale, Token: token,
		Data: data, CreatedAt: now, ExpiresAt: expires}
}

// withNotice returns c with a security notice of kind to the user (at to, when given).
func (c change) withNotice(u *domain.User, kind, to string, now time.Time, data map[string]string) change {
	c.messages = append(c.messages, newMessage(u, kind, to, "", now, now.Add(DefaultNoticeTTL), data))
	return c
}

// withCode returns c with a one-shot code of kind to deliver to the address to until expires.
func (c change) withCode(u *domain.User, kind, to, token string, now, expires time.Time) change {
	c.messages = append(c.messages, newMessage(u, kind, to, token, now, expires, nil))
	return c
}

// withSMS returns c with a one-shot code of kind to deliver by text message to the number to
// until expires.
func (c change) withSMS(u *domain.User, kind, to, token string, now, expires time.Time) change {
	m := newMessage(u, kind, to, token, now, expires, nil)
	m.Channel = "sms"
	c.messages = append(c.messages, m)
	return c
}
