package personaldata

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/idlog/idlog/auth"
	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/internal/jsonobj"
)

// sealedPrefix starts the JSON string that stands in the log for a sealed value: then base64
// (standard, padded) of auth.Sealer's output over the value's JSON text.
const sealedPrefix = "pd1:"

// erasedJSON is what readers see in place of a personal value once the user is erased.
var erasedJSON = json.RawMessage(`"` + domain.Erased + `"`)

// aad binds a sealed value to its user, event type and field: a value copied elsewhere does not
// open. It is built in buf (a caller's array, on its stack) when it fits.
func aad(buf []byte, uid, typ, field string) []byte {
	return append(append(append(append(append(buf[:0], uid...), 0), typ...), 0), field...)
}

// aadBuf holds the authenticated data of a value: user ids, event types and field names are
// short.
type aadBuf [96]byte

// sealValue returns the JSON string that stands for plain sealed: the prefix and base64 need no
// escaping, so it is built directly.
func sealValue(s *auth.Sealer, plain []byte, ad []byte) json.RawMessage {
	sealed := s.Seal(plain, ad)
	out := make([]byte, 0, 2+sealedLen(sealed))
	return append(appendSealed(append(out, '"'), sealed), '"')
}

// appendSealed appends the text of a sealed value (the prefix, then base64) to dst.
func appendSealed(dst, sealed []byte) []byte {
	return base64.StdEncoding.AppendEncode(append(dst, sealedPrefix...), sealed)
}

// sealedLen is how long appendSealed's text of sealed is.
func sealedLen(sealed []byte) int {
	return len(sealedPrefix) + base64.StdEncoding.EncodedLen(len(sealed))
}

// sealedText returns the sealed bytes of a value that is a sealed JSON string.
func sealedText(v json.RawMessage) ([]byte, bool) {
	if len(v) < len(sealedPrefix)+2 || v[0] != '"' || !bytes.HasPrefix(v[1:], []byte(sealedPrefix)) {
		return nil, false
	}
	b, err := base64.StdEncoding.DecodeString(string(v[1+len(sealedPrefix) : len(v)-1]))
	return b, err == nil
}

// codec seals and opens the personal fields of one user's events.
type codec struct {
	reg *domain.Registry
}

// sealEvent seals e's personal fields and the envelope's IP address and user agent.
func (c codec) sealEvent(s *auth.Sealer, uid string, e eventstore.NewEvent) (eventstore.NewEvent, error) {
	if fields := c.reg.PersonalFields(e.Type); len(fields) > 0 {
		data, err := rewrite(e.Data, fields, func(field string, v json.RawMessage) (json.RawMessage, error) {
			var buf aadBuf
			return sealValue(s, v, aad(buf[:], uid, e.Type, field)), nil
		})
		if err != nil {
			return e, fmt.Errorf("personaldata: seal %s: %w", e.Type, err)
		}
		e.Data = data
	}
	var buf aadBuf
	e.Metadata.IP = sealString(s, e.Metadata.IP, aad(buf[:], uid, "", "ip"))
	e.Metadata.UserAgent = sealString(s, e.Metadata.UserAgent, aad(buf[:], uid, "", "user_agent"))
	return e, nil
}

func sealString(s *auth.Sealer, v string, ad []byte) string {
	if v == "" {
		return ""
	}
	sealed := s.Seal([]byte(v), ad)
	return string(appendSealed(make([]byte, 0, sealedLen(sealed)), sealed))
}

// openEvent opens what sealEvent sealed. s nil means the user is erased: every personal value,
// sealed or stored before sealing existed, reads as "[erased]".
func (c codec) openEvent(s *auth.Sealer, uid string, e eventstore.Event) (eventstore.Event, error) {
	if fields := c.reg.PersonalFields(e.Type); len(fields) > 0 {
		data, err := rewrite(e.Data, fields, func(field string, v json.RawMessage) (json.RawMessage, error) {
			if s == nil {
				return erasedJSON, nil
			}
			b, ok := sealedText(v)
			if !ok {
				return v, nil // stored before sealing existed
			}
			var buf aadBuf
			plain, err := s.Open(b, aad(buf[:], uid, e.Type, field))
			if err != nil {
				return nil, fmt.Errorf("field %s: %w", field, err)
			}
			return plain, nil
		})
		if err != nil {
			return e, fmt.Errorf("personaldata: open %s at %d: %w", e.Type, e.GlobalPosition, err)
		}
		e.Data = data
	}
	var err error
	var buf aadBuf
	if e.Metadata.IP, err = openString(s, e.Metadata.IP, aad(buf[:], uid, "", "ip")); err != nil {
		return e, fmt.Errorf("personaldata: open the ip of the event at %d: %w", e.GlobalPosition, err)
	}
	if e.Metadata.UserAgent, err = openString(s, e.Metadata.UserAgent, aad(buf[:], uid, "", "user_agent")); err != nil {
		return e, fmt.Errorf("personaldata: open the user agent of the event at %d: %w", e.GlobalPosition, err)
	}
	return e, nil
}

func openString(s *auth.Sealer, v string, ad []byte) (string, error) {
	if v == "" {
		return "", nil
	}
	if s == nil {
		return domain.Erased, nil
	}
	rest, ok := strings.CutPrefix(v, sealedPrefix)
	if !ok {
		return v, nil
	}
	b, err := base64.StdEncoding.DecodeString(rest)
	if err != nil {
		return "", err
	}
	plain, err := s.Open(b, ad)
	return string(plain), err
}

// hasPersonal reports whether an event may hold personal data at all, so readers skip the key
// look-up for the others.
func (c codec) hasPersonal(e eventstore.Event) bool {
	return e.Metadata.IP != "" || e.Metadata.UserAgent != "" || len(c.reg.PersonalFields(e.Type)) > 0
}

// rewrite replaces the value of each non-null member of the JSON object data named in fields by
// f's, splicing bytes: every other byte of data is kept as it is, members in their order. A field
// that occurs more than once is replaced at each occurrence. data that is not a valid JSON object
// comes back unchanged (nothing named to seal; the store refuses invalid JSON).
func rewrite(data json.RawMessage, fields []string, f func(field string, v json.RawMessage) (json.RawMessage, error)) (json.RawMessage, error) {
	members, ok := jsonobj.Members(data)
	if !ok {
		return data, nil
	}
	var out []byte // nil until the first replacement
	last := 0      // data[:last] is in out
	for m := range members {
		name, ok := jsonobj.NameIn(m.Key, fields)
		if !ok || string(data[m.Start:m.End]) == "null" {
			continue
		}
		nv, err := f(name, data[m.Start:m.End])
		if err != nil {
			return nil, err
		}
		if out == nil {
			out = make([]byte, 0, len(data)+len(nv)*2)
		}
		out = append(append(out, data[last:m.Start]...), nv...)
		last = m.End
	}
	if out == nil {
		return data, nil
	}
	return append(out, data[last:]...), nil
}

// hasSealed reports whether the event holds a sealed value (in its envelope or, roughly, its data).
func (c codec) hasSealed(e eventstore.Event) bool {
	return strings.HasPrefix(e.Metadata.IP, sealedPrefix) || strings.HasPrefix(e.Metadata.UserAgent, sealedPrefix) ||
		bytes.Contains(e.Data, []byte(`"`+sealedPrefix))
}
