package eventbus

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/internal/jsonobj"
)

// Names on the wire.
const (
	// EventsStream is the JetStream stream the relay publishes to.
	EventsStream = "IDLOG_EVENTS"
	// EventsSubjects is the subject filter of EventsStream: idlog.events.<EventType>.<uid>.
	EventsSubjects = "idlog.events.>"
	// NotificationsStream holds one-shot secrets for mailers and SMS senders, briefly.
	NotificationsStream = "IDLOG_NOTIFICATIONS"
	// NotificationsSubjects is the subject filter of NotificationsStream: idlog.notifications.<kind>.
	NotificationsSubjects = "idlog.notifications.>"
	// DefaultSource is the CloudEvents source of idlog's messages.
	DefaultSource = "idlog"

	eventsPrefix        = "idlog.events."
	notificationsPrefix = "idlog.notifications."
	userStreamPrefix    = "user-"
	// Header names JetStream reads.
	headerMsgID          = "Nats-Msg-Id"
	headerExpectedLastID = "Nats-Expected-Last-Msg-Id"
	headerExpectedStream = "Nats-Expected-Stream"
)

// withheldFields are keys of event data that never leave idlog: password hashes, the sealed
// TOTP secret, the hashes of a live session's refresh and CSRF tokens and of a phone code are kept in the log for
// the aggregate, but a downstream consumer has no use for them and every copy is one more place
// to attack them from.
var withheldFields = []string{"password_hash", "ciphertext", "refresh_hash", "csrf_hash", "code_hash"}

// withheldKeys are withheldFields as the JSON keys appendData looks for, made once: the relay
// looks for each in every event's data.
var withheldKeys = func() [][]byte {
	keys := make([][]byte, len(withheldFields))
	for i, f := range withheldFields {
		keys[i] = []byte(`"` + f + `"`)
	}
	return keys
}()

// CloudEvent is the body of every message on idlog.events.>: a CloudEvents 1.0 event in the
// structured JSON format, with idlog's envelope as extension attributes. Go consumers may decode
// a message into it.
type CloudEvent struct {
	SpecVersion     string          `json:"specversion"` // always "1.0"
	ID              string          `json:"id"`          // the event id (a UUIDv7), also the Nats-Msg-Id
	Source          string          `json:"source"`
	Type            string          `json:"type"`    // the stored event type, e.g. UserRegistered
	Subject         string          `json:"subject"` // the user's uid (or the sanitised stream id)
	Time            time.Time       `json:"time"`    // when the event was recorded
	DataContentType string          `json:"datacontenttype"`
	Data            json.RawMessage `json:"data"`
	// Position is the event's global position, a decimal string: positions exceed both the
	// CloudEvents integer range and the integers JSON parsers keep exact.
	Position      string `json:"idlogposition"`
	Stream        string `json:"idlogstream"`
	StreamVersion uint64 `json:"idlogstreamversion"`
	SchemaVersion int    `json:"idlogschemaversion"`
	Actor         string `json:"idlogactor,omitempty"`
	ActorRole     string `json:"idlogactorrole,omitempty"`
	CorrelationID string `json:"idlogcorrelationid,omitempty"`
	CausationID   string `json:"idlogcausationid,omitempty"`
	// KeyID names the key that signed the event (its RFC 7638 thumbprint, as in the JWKS).
	KeyID string `json:"idlogkeyid"`
	// Signature is the Ed25519 signature of the message, unpadded base64url, or, for a message
	// published in a batch, the signature of the batch's root and the message's inclusion path:
	// see VerifyEvent and appendBatchSignatures. It is always the last member.
	Signature string `json:"idlogsignature"`
}

// Subject is the NATS subject the relay publishes e on: idlog.events.<EventType>.<uid>.
func Subject(e eventstore.Event) string {
	return eventsPrefix + subjectToken(e.Type) + "." + SubjectUID(e.StreamID)
}

// SubjectUID is the last token of an event's subject: the uid of a user stream ("user-ID1A2B3C4D5E"
// gives "ID1A2B3C4D5E"), other stream ids with every character a subject token cannot hold
// replaced by '_'.
func SubjectUID(streamID string) string {
	if uid, ok := strings.CutPrefix(streamID, userStreamPrefix); ok && uid != "" {
		return subjectToken(uid)
	}
	return subjectToken(streamID)
}

// subjectToken makes s a valid, literal subject token: letters, digits, '-' and '_' stay, every
// other character (dots, wildcards, spaces, non-ASCII) becomes '_'.
func subjectToken(s string) string {
	if s == "" {
		return "_"
	}
	if isToken(s) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if r < utf8.RuneSelf && isTokenByte(byte(r)) {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isTokenByte(s[i]) {
			return false
		}
	}
	return s != ""
}

func isTokenByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}

// appendCloudEvent appends e as a CloudEvent in JSON, signed by signer, to b.
func appendCloudEvent(b []byte, signer *EventSigner, source string, e eventstore.Event) []byte {
	start := len(b)
	b = appendUnsignedCloudEvent(b, source, e)
	return signer.appendSignature(b, start)
}

// appendUnsignedCloudEvent appends e as a CloudEvent in JSON to b. It writes the JSON by hand: the
// relay encodes every event, and encoding/json would re-validate the data it embeds.
func appendUnsignedCloudEvent(b []byte, source string, e eventstore.Event) []byte {
	b = append(b, `{"specversion":"1.0","id":"`...)
	b = append(b, e.ID.String()...)
	b = append(b, `","source":`...)
	b = appendString(b, source)
	b = append(b, `,"type":`...)
	b = appendString(b, e.Type)
	b = append(b, `,"subject":`...)
	b = appendString(b, SubjectUID(e.StreamID))
	b = append(b, `,"time":"`...)
	b = e.RecordedAt.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","datacontenttype":"application/json","data":`...)
	b = appendData(b, e.Data)
	b = append(b, `,"idlogposition":"`...)
	b = strconv.AppendUint(b, e.GlobalPosition, 10)
	b = append(b, `","idlogstream":`...)
	b = appendString(b, e.StreamID)
	b = append(b, `,"idlogstreamversion":`...)
	b = strconv.AppendUint(b, e.StreamVersion, 10)
	b = append(b, `,"idlogschemaversion":`...)
	b = strconv.AppendInt(b, int64(e.SchemaVersion), 10)
	for _, ext := range [...]struct{ name, value string }{
		{"idlogactor", e.Metadata.ActorUID},
		{"idlogactorrole", e.Metadata.ActorRole},
		{"idlogcorrelationid", e.Metadata.CorrelationID},
		{"idlogcausationid", e.Metadata.CausationID},
	} {
		if ext.value != "" {
			b = append(b, ',', '"')
			b = append(b, ext.name...)
			b = append(b, '"', ':')
			b = appendString(b, ext.value)
		}
	}
	return append(b, '}')
}

// appendData appends the event's data without the withheld fields, on one line (consumers read
// NDJSON). The store only holds valid JSON.
func appendData(b []byte, data json.RawMessage) []byte {
	if len(data) == 0 {
		return append(b, "null"...)
	}
	// A key may be spelt with escapes ("password\u005fhash"); only decoding tells, so data
	// holding an escape goes the withholding way too.
	withhold := bytes.Contains(data, []byte(`\u`))
	for _, k := range withheldKeys {
		if bytes.Contains(data, k) {
			withhold = true
			break
		}
	}
	if withhold {
		data = without(data)
	}
	if bytes.ContainsAny(data, "\r\n") {
		var buf bytes.Buffer
		if json.Compact(&buf, data) == nil {
			return append(b, buf.Bytes()...)
		}
	}
	return append(b, data...)
}

// without returns the JSON object data without its members named in withheldFields, the others
// in their order and spelling (a splice: decoding into a map and encoding it again cost the
// relay more than a raw publish for each event that carries such a field). Data that is no
// object comes back as it is.
func without(data []byte) []byte {
	members, ok := jsonobj.Members(data)
	if !ok {
		return data
	}
	out := make([]byte, 0, len(data))
	out = append(out, '{')
	for m := range members {
		if _, withheld := jsonobj.NameIn(m.Key, withheldFields); withheld {
			continue
		}
		if len(out) > 1 {
			out = append(out, ',')
		}
		out = append(append(append(out, m.Key...), ':'), data[m.Start:m.End]...)
	}
	return append(out, '}')
}

// appendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD, as encoding/json does.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' { // valid JSON, but not in JavaScript string literals
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
