package eventstore

import (
	"fmt"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// ErrInvalidText: a text bound for the log is not valid UTF-8, or holds NUL (a raw byte, or a
// JSON \u0000 escape), or a JSON \u escape of a lone surrogate. PostgreSQL refuses such text
// (22021, and jsonb refuses \u0000), SQLite would keep it and hand invalid JSON to every reader
// and to NATS, so no adapter may store it. It matches ErrInvalidAppend.
var ErrInvalidText = fmt.Errorf("%w: text is not valid UTF-8 or holds NUL", ErrInvalidAppend)

// CheckText reports whether s may enter the log: valid UTF-8 without NUL.
func CheckText(s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: invalid UTF-8", ErrInvalidText)
	}
	if strings.IndexByte(s, 0) >= 0 {
		return fmt.Errorf("%w: NUL", ErrInvalidText)
	}
	return nil
}

// CheckJSONText reports whether the JSON document data may enter the log: valid UTF-8, no NUL
// byte, and no string escape that decodes to NUL or to half a surrogate pair. It does not check
// the JSON syntax itself (json.Valid does), only what the text decodes to.
func CheckJSONText(data []byte) error {
	if !utf8.Valid(data) {
		return fmt.Errorf("%w: invalid UTF-8", ErrInvalidText)
	}
	for i := 0; i < len(data); i++ {
		switch data[i] {
		case 0:
			return fmt.Errorf("%w: NUL", ErrInvalidText)
		case '\\':
			// Inside a string (a backslash is nowhere else in valid JSON): skip the escaped
			// character, and look into \u escapes.
			if i+1 >= len(data) {
				return nil // not JSON; json.Valid says so
			}
			i++
			if data[i] != 'u' {
				continue
			}
			r, ok := hex4(data, i+1)
			if !ok {
				return nil
			}
			i += 4
			switch {
			case r == 0:
				return fmt.Errorf("%w: \\u0000 escape", ErrInvalidText)
			case utf16.IsSurrogate(r):
				// A high surrogate must be followed at once by an escaped low one.
				if r >= 0xdc00 || i+6 >= len(data) || data[i+1] != '\\' || data[i+2] != 'u' {
					return fmt.Errorf("%w: lone surrogate escape", ErrInvalidText)
				}
				lo, ok := hex4(data, i+3)
				if !ok || utf16.DecodeRune(r, lo) == utf8.RuneError {
					return fmt.Errorf("%w: lone surrogate escape", ErrInvalidText)
				}
				i += 6
			}
		}
	}
	return nil
}

// hex4 decodes the four hex digits at data[i:i+4].
func hex4(data []byte, i int) (rune, bool) {
	if i+4 > len(data) {
		return 0, false
	}
	var r rune
	for _, c := range data[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// checkText checks every text of an append: the stream, types, keys, metadata and data.
func (a Append) checkText() error {
	bad := func(what string, err error) error { return fmt.Errorf("%w (%s)", err, what) }
	if err := CheckText(a.Stream); err != nil {
		return bad("stream id", err)
	}
	for i, e := range a.Events {
		if err := CheckText(e.Type); err != nil {
			return bad(fmt.Sprintf("type of event %d", i), err)
		}
		if err := CheckJSONText(e.Data); err != nil {
			return bad(fmt.Sprintf("data of event %d (%s)", i, e.Type), err)
		}
		if err := e.Metadata.CheckText(); err != nil {
			return bad(fmt.Sprintf("metadata of event %d (%s)", i, e.Type), err)
		}
	}
	for _, k := range a.Claim {
		if err := CheckText(k); err != nil {
			return bad("unique key", err)
		}
	}
	for _, k := range a.Release {
		if err := CheckText(k); err != nil {
			return bad("unique key", err)
		}
	}
	if a.DataKey != nil {
		if err := CheckText(a.DataKey.UID); err != nil {
			return bad("data key's user id", err)
		}
	}
	return nil
}

// CheckText checks every text of a stored event (an import's) as Append.Validate does.
func (e Event) CheckText() error {
	if err := CheckText(e.StreamID); err != nil {
		return fmt.Errorf("%w (stream id)", err)
	}
	if err := CheckText(e.Type); err != nil {
		return fmt.Errorf("%w (type)", err)
	}
	if err := CheckJSONText(e.Data); err != nil {
		return fmt.Errorf("%w (data)", err)
	}
	if err := e.Metadata.CheckText(); err != nil {
		return fmt.Errorf("%w (metadata)", err)
	}
	return nil
}

// CheckText checks every field of the metadata with CheckText.
func (m Metadata) CheckText() error {
	for _, f := range [...]string{m.ActorUID, m.ActorRole, m.IP, m.UserAgent, m.CorrelationID, m.CausationID, m.IdempotencyKey} {
		if err := CheckText(f); err != nil {
			return err
		}
	}
	return nil
}
