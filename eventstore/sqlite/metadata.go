package sqlite

import (
	"encoding/json"
	"unicode/utf8"

	"github.com/idlog/idlog/eventstore"
)

// decodeMetadata decodes a stored metadata column into m, which must be zero. The writer stores
// json.Marshal's output: a flat object of plain strings under the known keys, which the fast path
// reads without reflection (json.Unmarshal was half the cost of reading the log). Anything else
// (escapes, spacing, other keys or values, a key twice, bad UTF-8) goes to json.Unmarshal, which
// stays the reference: both give the same result for every input.
func decodeMetadata(b []byte, m *eventstore.Metadata) error {
	if decodePlainMetadata(b, m) {
		return nil
	}
	*m = eventstore.Metadata{}
	return json.Unmarshal(b, m)
}

// decodePlainMetadata is the fast path of decodeMetadata; false when b is not in its plain form.
func decodePlainMetadata(b []byte, m *eventstore.Metadata) bool {
	if len(b) < 2 || b[0] != '{' || b[len(b)-1] != '}' {
		return false
	}
	b = b[1 : len(b)-1]
	var seen uint8
	for len(b) > 0 {
		key, rest, ok := plainString(b)
		if !ok || len(rest) == 0 || rest[0] != ':' {
			return false
		}
		val, rest, ok := plainString(rest[1:])
		if !ok {
			return false
		}
		f, bit := metadataField(m, key)
		if f == nil || seen&bit != 0 {
			return false
		}
		seen |= bit
		*f = string(val)
		b = rest
		if len(b) > 0 {
			if b[0] != ',' || len(b) == 1 {
				return false
			}
			b = b[1:]
		}
	}
	return true
}

// plainString reads a JSON string without escapes at the start of b: its bytes and what follows.
func plainString(b []byte) (s, rest []byte, ok bool) {
	if len(b) == 0 || b[0] != '"' {
		return nil, nil, false
	}
	for i := 1; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			s = b[1:i]
			return s, b[i+1:], utf8.Valid(s)
		case c == '\\' || c < 0x20:
			return nil, nil, false
		}
	}
	return nil, nil, false
}

// metadataField is the field of m named by its exact JSON key, and a bit of its own.
func metadataField(m *eventstore.Metadata, key []byte) (*string, uint8) {
	switch string(key) {
	case "actor_uid":
		return &m.ActorUID, 1 << 0
	case "actor_role":
		return &m.ActorRole, 1 << 1
	case "ip":
		return &m.IP, 1 << 2
	case "user_agent":
		return &m.UserAgent, 1 << 3
	case "correlation_id":
		return &m.CorrelationID, 1 << 4
	case "causation_id":
		return &m.CausationID, 1 << 5
	case "idempotency_key":
		return &m.IdempotencyKey, 1 << 6
	}
	return nil, 0
}
