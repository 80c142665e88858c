package audit

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"time"

	"github.com/idlog/idlog/eventstore"
)

// Hash is a value of the chain: a SHA-256 sum. The zero Hash is chain_0.
type Hash [sha256.Size]byte

// String is the hash in lower-case hex, as the ledger's users and the export show it.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// MarshalText encodes the hash as hex.
func (h Hash) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText decodes 64 hex digits.
func (h *Hash) UnmarshalText(b []byte) error {
	p, err := ParseHash(string(b))
	if err != nil {
		return err
	}
	*h = p
	return nil
}

// ErrBadHash: a chain value is not 64 hex digits.
var ErrBadHash = errors.New("audit: chain hash is not 64 hex digits")

// ParseHash reads a hash written by String.
func ParseHash(s string) (Hash, error) {
	var h Hash
	if len(s) != 2*len(h) {
		return h, fmt.Errorf("%w: %q", ErrBadHash, s)
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return h, fmt.Errorf("%w: %q", ErrBadHash, s)
	}
	return h, nil
}

// canonicalMagic starts the canonical bytes of every event; a later format gets another.
const canonicalMagic = "idlog-event/1"

// recordedAtLayout is RFC 3339 in UTC with exactly six fractional digits: the stores keep
// microseconds.
const recordedAtLayout = "2006-01-02T15:04:05.000000Z"

// AppendCanonical appends the canonical bytes of e at ordinal to dst and returns the result. The
// encoding is fixed; changing it would break every chain already sealed:
//
//	"idlog-event/1"                  13 bytes, no length
//	ordinal                          uint64, big-endian
//	event id                         16 bytes
//	stream id                        str
//	stream version                   uint64, big-endian
//	type                             str
//	schema version                   uint64, big-endian
//	recorded_at                      str: RFC 3339, UTC, six fractional digits ("...T10:00:00.123456Z")
//	metadata: actor uid, actor role, ip, user agent, correlation id, causation id, idempotency key
//	                                 seven str, in this order, "" when absent
//	data                             str: the stored JSON bytes, exactly
//
// where str is the length in bytes as a big-endian uint64, then the bytes. Every field has a fixed
// place or a length, so two different envelopes never encode alike. The backend's global position
// is left out: it differs between backends, and the ordinal stands for it.
func AppendCanonical(dst []byte, ordinal uint64, e eventstore.Event) []byte {
	str := func(b []byte, s string) []byte {
		return append(binary.BigEndian.AppendUint64(b, uint64(len(s))), s...)
	}
	dst = append(dst, canonicalMagic...)
	dst = binary.BigEndian.AppendUint64(dst, ordinal)
	dst = append(dst, e.ID[:]...)
	dst = str(dst, e.StreamID)
	dst = binary.BigEndian.AppendUint64(dst, e.StreamVersion)
	dst = str(dst, e.Type)
	dst = binary.BigEndian.AppendUint64(dst, uint64(int64(e.SchemaVersion)))
	dst = binary.BigEndian.AppendUint64(dst, uint64(len(recordedAtLayout)))
	dst = appendRecordedAt(dst, e.RecordedAt)
	m := e.Metadata
	for _, f := range [...]string{m.ActorUID, m.ActorRole, m.IP, m.UserAgent, m.CorrelationID, m.CausationID, m.IdempotencyKey} {
		dst = str(dst, f)
	}
	dst = binary.BigEndian.AppendUint64(dst, uint64(len(e.Data)))
	return append(dst, e.Data...)
}

// appendRecordedAt appends t as AppendFormat(recordedAtLayout) does for t in UTC, without its
// general layout machinery, which took more time than the SHA-256 of the event: years 0 to
// 9999 are written here, digit by digit; any other (more or fewer digits) goes through
// AppendFormat.
func appendRecordedAt(dst []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		return t.AppendFormat(dst, recordedAtLayout)
	}
	hour, minute, sec := t.Clock()
	micro := t.Nanosecond() / 1000
	var b [len(recordedAtLayout)]byte
	put := func(at, width, v int) {
		for i := at + width - 1; i >= at; i-- {
			b[i] = byte('0' + v%10)
			v /= 10
		}
	}
	put(0, 4, year)
	b[4] = '-'
	put(5, 2, int(month))
	b[7] = '-'
	put(8, 2, day)
	b[10] = 'T'
	put(11, 2, hour)
	b[13] = ':'
	put(14, 2, minute)
	b[16] = ':'
	put(17, 2, sec)
	b[19] = '.'
	put(20, 6, micro)
	b[26] = 'Z'
	return append(dst, b[:]...)
}

// Chain computes the chain over a log read in order. The zero Chain is at ordinal 0 with head
// chain_0; it is not safe for concurrent use.
type Chain struct {
	ordinal uint64
	head    Hash
	buf     []byte
	h       hash.Hash
}

// ResumeChain returns a chain whose last link is ordinal with value head, so the next Add is
// ordinal+1.
func ResumeChain(ordinal uint64, head Hash) *Chain {
	return &Chain{ordinal: ordinal, head: head}
}

// Add links the next event and returns its ordinal and chain value.
func (c *Chain) Add(e eventstore.Event) (uint64, Hash) {
	if c.h == nil {
		c.h = sha256.New()
	}
	c.ordinal++
	if cap(c.buf) > 1<<20 {
		c.buf = nil // one huge event must not pin its buffer for the rest of the log
	}
	c.buf = AppendCanonical(c.buf[:0], c.ordinal, e)
	c.h.Reset()
	c.h.Write(c.head[:])
	c.h.Write(c.buf)
	c.h.Sum(c.head[:0])
	return c.ordinal, c.head
}

// Ordinal is the ordinal of the last event added, 0 before any.
func (c *Chain) Ordinal() uint64 { return c.ordinal }

// Head is the chain value of the last event added: chain_0 before any.
func (c *Chain) Head() Hash { return c.head }
