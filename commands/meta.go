package commands

import (
	"strings"
	"unicode/utf8"

	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/eventstore"
)

// Meta is who asks for a command, from where, and under which request: it becomes the metadata
// of every event the command appends. The API fills it from the request; the CLI from the system.
type Meta struct {
	ActorUID  string // the signed-in user, eventstore.ActorSystem, or empty for an anonymous caller
	ActorRole string
	IP        string
	UserAgent string
	// RequestID becomes the events' correlation id.
	RequestID string
	// IdempotencyKey, when set, makes a retry of the same command by the same actor append
	// nothing (see the package documentation). At most 255 bytes. The API sets a key bound to the
	// whole request, never the client's Idempotency-Key as such.
	IdempotencyKey string
}

// maxIdempotencyKey bounds the key a client may send.
const maxIdempotencyKey = 255

// maxUserAgent bounds what of a user agent is stored with every event.
const maxUserAgent = 512

// metadata is the envelope metadata of the command's events.
func (m Meta) metadata() eventstore.Metadata {
	return eventstore.Metadata{
		ActorUID: m.ActorUID, ActorRole: m.ActorRole, IP: m.IP, UserAgent: userAgent(m.UserAgent),
		CorrelationID: m.RequestID, IdempotencyKey: m.IdempotencyKey,
	}
}

// userAgent is the part of a user agent kept in the log: at most maxUserAgent bytes of valid
// UTF-8 without NUL. Browsers may send Latin-1 bytes (HTTP allows them), and the log refuses
// invalid text; a user agent is only informative, so it is mended rather than refused.
func userAgent(ua string) string {
	if len(ua) > maxUserAgent {
		ua = ua[:maxUserAgent]
	}
	ua = strings.ToValidUTF8(strings.ReplaceAll(ua, "\x00", ""), "\uFFFD")
	for len(ua) > maxUserAgent { // the replacements are longer than the bytes they replace
		_, n := utf8.DecodeLastRuneInString(ua)
		ua = ua[:len(ua)-n]
	}
	return ua
}

// asUser makes an anonymous caller the user they proved to be (with a password or a one-shot
// token), so the activity log shows who acted.
func (m Meta) asUser(u *domain.User) Meta {
	if m.ActorUID == "" {
		m.ActorUID, m.ActorRole = string(u.ID()), u.Role().String()
	}
	return m
}
