package audit_test

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/idlog/idlog/audit"
	"github.com/idlog/idlog/eventstore"
)

func sampleEvent() eventstore.Event {
	return eventstore.Event{
		ID:             uuid.MustParse("01890a5d-ac96-774b-bcce-b302099a8057"),
		StreamID:       "user-ID0123456789",
		StreamVersion:  3,
		GlobalPosition: 99, // not chained
		Type:           "EmailChanged",
		SchemaVersion:  1,
		Data:           json.RawMessage(`{"from":"a@example.com","to":"b@example.com"}`),
		Metadata:       eventstore.Metadata{ActorUID: "ID0123456789", IP: "192.0.2.1", IdempotencyKey: "k"},
		RecordedAt:     time.Date(2025, 3, 4, 5, 6, 7, 123456000, time.UTC),
	}
}

// TestCanonicalBytes builds the documented encoding by hand: a change to AppendCanonical that
// breaks the format (and every chain already sealed) fails here.
func TestCanonicalBytes(t *testing.T) {
	t.Parallel()
	e := sampleEvent()
	u64 := func(b []byte, v uint64) []byte { return binary.BigEndian.AppendUint64(b, v) }
	str := func(b []byte, s string) []byte { return append(u64(b, uint64(len(s))), s...) }
	var want []byte
	want = append(want, "idlog-event/1"...)
	want = u64(want, 7)
	want = append(want, e.ID[:]...)
	want = str(want, "user-ID0123456789")
	want = u64(want, 3)
	want = str(want, "EmailChanged")
	want = u64(want, 1)
	want = str(want, "2025-03-04T05:06:07.123456Z")
	for _, f := range []string{"ID0123456789", "", "192.0.2.1", "", "", "", "k"} {
		want = str(want, f)
	}
	want = str(want, `{"from":"a@example.com","to":"b@example.com"}`)
	if got := audit.AppendCanonical(nil, 7, e); string(got) != string(want) {
		t.Fatalf("canonical bytes:\n%q\nwant\n%q", got, want)
	}

	// chain_i = SHA-256(chain_{i-1} || canonical_i), chain_0 = 32 zero bytes.
	var c audit.Chain
	h1 := sha256.Sum256(append(make([]byte, 32), audit.AppendCanonical(nil, 1, e)...))
	if o, h := c.Add(e); o != 1 || h != audit.Hash(h1) {
		t.Fatalf("first link: ordinal %d, %s; want 1, %x", o, h, h1)
	}
	h2 := sha256.Sum256(append(h1[:], audit.AppendCanonical(nil, 2, e)...))
	if o, h := c.Add(e); o != 2 || h != audit.Hash(h2) {
		t.Fatalf("second link: ordinal %d, %s; want 2, %x", o, h, h2)
	}
	r := audit.ResumeChain(1, audit.Hash(h1))
	if _, h := r.Add(e); h != audit.Hash(h2) {
		t.Fatalf("resumed chain gives %s, want %x", h, h2)
	}
}

// TestCanonicalBytesSeeEveryField: changing any envelope field but the position changes the
// chain; the position alone does not.
func TestCanonicalBytesSeeEveryField(t *testing.T) {
	t.Parallel()
	base := audit.AppendCanonical(nil, 1, sampleEvent())
	edits := map[string]func(e *eventstore.Event){
		"id":             func(e *eventstore.Event) { e.ID[15]++ },
		"stream":         func(e *eventstore.Event) { e.StreamID += "0" },
		"version":        func(e *eventstore.Event) { e.StreamVersion++ },
		"type":           func(e *eventstore.Event) { e.Type = "EmailChangeD" },
		"schema version": func(e *eventstore.Event) { e.SchemaVersion++ },
		"recorded_at":    func(e *eventstore.Event) { e.RecordedAt = e.RecordedAt.Add(time.Microsecond) },
		"actor":          func(e *eventstore.Event) { e.Metadata.ActorUID = "system" },
		"role":           func(e *eventstore.Event) { e.Metadata.ActorRole = "admin" },
		"ip":             func(e *eventstore.Event) { e.Metadata.IP = "192.0.2.2" },
		"user agent":     func(e *eventstore.Event) { e.Metadata.UserAgent = "x" },
		"correlation":    func(e *eventstore.Event) { e.Metadata.CorrelationID = "x" },
		"causation":      func(e *eventstore.Event) { e.Metadata.CausationID = "x" },
		"idempotency":    func(e *eventstore.Event) { e.Metadata.IdempotencyKey = "" },
		"data":           func(e *eventstore.Event) { e.Data = json.RawMessage(`{"from":"a@example.com", "to":"b@example.com"}`) },
		// Shifting a byte from one field to the next must not give the same encoding.
		"field boundary": func(e *eventstore.Event) { e.Metadata.ActorUID, e.Metadata.ActorRole = "ID012345678", "9" },
	}
	for name, edit := range edits {
		e := sampleEvent()
		edit(&e)
		if string(audit.AppendCanonical(nil, 1, e)) == string(base) {
			t.Errorf("changing the %s leaves the canonical bytes alike", name)
		}
	}
	e := sampleEvent()
	e.GlobalPosition = 1 << 40
	if string(audit.AppendCanonical(nil, 1, e)) != string(base) {
		t.Error("the position changes the canonical bytes; a history moved to another backend would lose its chain")
	}
	if string(audit.AppendCanonical(nil, 2, sampleEvent())) == string(base) {
		t.Error("the ordinal does not change the canonical bytes")
	}
}

func TestParseHash(t *testing.T) {
	t.Parallel()
	var c audit.Chain
	_, h := c.Add(sampleEvent())
	if p, err := audit.ParseHash(h.String()); err != nil || p != h {
		t.Fatalf("ParseHash(%s) = %s, %v", h, p, err)
	}
	for _, bad := range []string{"", "00", h.String()[:63] + "g", h.String() + "00"} {
		if _, err := audit.ParseHash(bad); !errors.Is(err, audit.ErrBadHash) {
			t.Errorf("ParseHash(%q): %v, want ErrBadHash", bad, err)
		}
	}
}
