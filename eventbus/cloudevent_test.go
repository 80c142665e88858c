package eventbus_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/idlog/idlog/eventbus"
	"github.com/idlog/idlog/eventstore"
)

func TestSubject(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ typ, stream, want string }{
		{"UserRegistered", "user-ID1A2B3C4D5E", "idlog.events.UserRegistered.ID1A2B3C4D5E"},
		{"LabelAdded", "reservation-email:a.b@example.com", "idlog.events.LabelAdded.reservation-email_a_b_example_com"},
		{"X", "user-", "idlog.events.X.user-"},
		{"Odd.Type*", "user-a b>c", "idlog.events.Odd_Type_.a_b_c"},
		{"", "", "idlog.events._._"},
		{"T", "user-ünï", "idlog.events.T._n_"},
	} {
		if got := eventbus.Subject(eventstore.Event{Type: tt.typ, StreamID: tt.stream}); got != tt.want {
			t.Errorf("Subject(%q, %q) = %q, want %q", tt.typ, tt.stream, got, tt.want)
		}
	}
}

// Every string the envelope may hold survives the hand-written JSON.
func TestCloudEventStringsRoundTrip(t *testing.T) {
	t.Parallel()
	for _, s := range []string{
		"plain", `quote " and backslash \`, "newline\n tab\t cr\r", "\x00\x01\x1f control",
		"ünïcødé ✓ 🎉", "line\u2028separator\u2029", "bad utf8 \xff\xfe end", "<script>&amp;",
	} {
		j := eventbus.ExportAppendString(nil, s)
		if !json.Valid(j) {
			t.Errorf("appendString(%q) = %s, not valid JSON", s, j)
			continue
		}
		var got string
		if err := json.Unmarshal(j, &got); err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(s) // encoding/json's reading of the same string
		var wantS string
		json.Unmarshal(want, &wantS)
		if got != wantS {
			t.Errorf("appendString(%q) decodes to %q, want %q", s, got, wantS)
		}
	}
}

func TestCloudEventDataIsOneLineWithoutSecrets(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ data, want string }{
		{`{"a":1}`, `{"a":1}`},
		{"{\n  \"a\": 1\n}", `{"a":1}`},
		{`{"password_hash":"$argon2id$x","uid":"ID1"}`, `{"uid":"ID1"}`},
		{`{"ciphertext":"AAEC","step":3}`, `{"step":3}`},
		{`{"sid":"s1","refresh_hash":"9f86d081884c7d65","csrf_hash":"2c26b46b68ffc68f","expires_at":"2026-12-03T10:00:00Z"}`, `{"sid":"s1","expires_at":"2026-12-03T10:00:00Z"}`},
		{`{"data":{"password_hash":"kept: the user's own data"}}`, `{"data":{"password_hash":"kept: the user's own data"}}`},
		{`["password_hash"]`, `["password_hash"]`},
		{``, `null`},
		// A key spelt with escapes (an event brought in by idlog events import, say) is the same
		// key to every JSON reader: withheld too.
		{`{"password\u005fhash":"$argon2id$x","uid":"ID1"}`, `{"uid":"ID1"}`},
		{`{"\u0063iphertext":"AAEC","step":3}`, `{"step":3}`},
	} {
		b := eventbus.ExportAppendCloudEvent(nil, testSigner, "idlog", eventstore.Event{Type: "T", StreamID: "user-ID1", Data: json.RawMessage(tt.data)})
		var ce eventbus.CloudEvent
		if err := json.Unmarshal(b, &ce); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		if string(ce.Data) != tt.want {
			t.Errorf("data %q is published as %s, want %s", tt.data, ce.Data, tt.want)
		}
		for _, c := range b {
			if c == '\n' {
				t.Errorf("message %q spans lines", b)
			}
		}
	}
}

// What the signature costs the relay per event: compare the two sub-benchmarks.
func BenchmarkCloudEventEncoding(b *testing.B) {
	e := eventstore.Event{
		Type: "UserRegistered", StreamID: "user-ID1A2B3C4D5E", StreamVersion: 1, GlobalPosition: 1 << 21, SchemaVersion: 1,
		Data: json.RawMessage(`{"uid":"ID1A2B3C4D5E","email":"alice@example.com","username":"alice","role":"member"}`),
	}
	buf := make([]byte, 0, 1024)
	b.Run("unsigned", func(b *testing.B) {
		for b.Loop() {
			buf = eventbus.ExportAppendUnsignedCloudEvent(buf[:0], "idlog", e)
		}
	})
	b.Run("signed", func(b *testing.B) {
		for b.Loop() {
			buf = eventbus.ExportAppendCloudEvent(buf[:0], testSigner, "idlog", e)
		}
	})
}

// What a consumer spends verifying the relay's messages, published in trees of 16: each alone
// (VerifyEvent, an Ed25519 verification per message) and with an EventVerifier, which checks a
// tree's signature once.
func BenchmarkVerifyRelayedEvents(b *testing.B) {
	batch := make([]eventstore.Event, 32)
	for i := range batch {
		batch[i] = eventstore.Event{Type: "UserDataUpdated", StreamID: fmt.Sprintf("user-ID%010X", i), GlobalPosition: uint64(i + 1),
			Data: json.RawMessage(`{"data":{"language":"en"}}`), RecordedAt: time.Now()}
	}
	bodies := eventbus.ExportEncodeBatch(testSigner, eventbus.DefaultSource, batch)
	keys := testSigner.Keys()
	b.Run("alone", func(b *testing.B) {
		i := 0
		for b.Loop() {
			if _, err := eventbus.VerifyEvent(keys, "", bodies[i%len(bodies)]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("verifier", func(b *testing.B) {
		i := 0
		var v *eventbus.EventVerifier
		for b.Loop() {
			if i%len(bodies) == 0 {
				v = eventbus.NewEventVerifier(keys) // nothing remembered: each tree's signature is checked once
			}
			if _, err := v.Verify("", bodies[i%len(bodies)]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}
