package eventbus_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/idlog/idlog/eventbus"
	"github.com/idlog/idlog/eventstore"
)

// FuzzCloudEventDecoding feeds arbitrary bytes to a consumer's decoding of a message
// (json.Unmarshal into CloudEvent): it must never panic, and what decodes must survive a
// re-encoding unchanged. It then builds an event from the same input and checks the relay's
// hand-written encoding: valid JSON on one line, every field read back as encoding/json reads
// it, no withheld field in the data, and a stable round trip.
func FuzzCloudEventDecoding(f *testing.F) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	signer, err := eventbus.NewEventSigner(key)
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(`{"specversion":"1.0","id":"01946c1e-4a03-7c3a-9f10-5b2c8d4e6a01","source":"idlog","type":"UserRegistered","subject":"ID1A2B3C4D5E","time":"2025-01-15T10:00:01.123456Z","datacontenttype":"application/json","data":{"uid":"ID1A2B3C4D5E"},"idlogposition":"11534336","idlogstream":"user-ID1A2B3C4D5E","idlogstreamversion":1,"idlogschemaversion":1}`),
		"UserRegistered", "user-ID1A2B3C4D5E", "ID1A2B3C4D5E", uint64(11534336), uint64(1), 1)
	f.Add([]byte(`{"data":{"password_hash":"$argon2id$x","a":[1,2,{"b":null}]},"time":"not a time"}`),
		"PasswordChanged", "user-ID0000000001", "system", uint64(1), uint64(2), 1)
	f.Add([]byte(`{"idlogstreamversion":-1,"idlogschemaversion":1e400,"id":7}`), "Odd.Type*", "user-a b>c", "\xff\xfe", uint64(0), uint64(0), -3)
	f.Add([]byte(`{"data":"\ud800","subject":"\u2028","specversion":null}`), "", "", "", uint64(1<<63), uint64(1<<64-1), 0)
	f.Add([]byte(`[`), "T", "reservation-email:a.b@example.com", "admin\n\"quoted\"", uint64(42), uint64(7), 2)
	f.Add([]byte("{\"data\":{\n \"ciphertext\": \"AAEC\",\r\n \"step\": 3}}"), "OTPSecretGenerated", "user-ID1", "ID1", uint64(3), uint64(3), 1)

	f.Fuzz(func(t *testing.T, msg []byte, typ, stream, actor string, position, version uint64, schema int) {
		// A consumer decoding whatever arrives on the subject.
		var got eventbus.CloudEvent
		if json.Unmarshal(msg, &got) == nil {
			assertStableRoundTrip(t, got)
		}

		// The relay encoding an event built from the same input. The store holds valid JSON
		// data only; anything else stands for a null.
		data := json.RawMessage(msg)
		if !json.Valid(data) {
			data = nil
		}
		e := eventstore.Event{
			ID: uuid.NewSHA1(uuid.NameSpaceOID, msg), StreamID: stream, StreamVersion: version, GlobalPosition: position,
			Type: typ, SchemaVersion: schema, Data: data,
			Metadata: eventstore.Metadata{ActorUID: actor, ActorRole: typ, CorrelationID: stream, CausationID: actor},
			// A store time: from 2000 to about 2095, at microsecond precision.
			RecordedAt: time.Unix(946684800+int64(position%3e9), int64(version%1e6)*1000).UTC(),
		}
		b := eventbus.ExportAppendCloudEvent(nil, signer, eventbus.DefaultSource, e)
		if !json.Valid(b) || bytes.ContainsAny(b, "\r\n") {
			t.Fatalf("encoding of %+v is not valid one-line JSON: %s", e, b)
		}
		var ce eventbus.CloudEvent
		if err := json.Unmarshal(b, &ce); err != nil {
			t.Fatalf("encoding of %+v does not decode: %v: %s", e, err, b)
		}
		want := map[string][2]string{
			"type":               {ce.Type, jsonString(typ)},
			"idlogstream":        {ce.Stream, jsonString(stream)},
			"idlogactor":         {ce.Actor, jsonString(actor)},
			"idlogactorrole":     {ce.ActorRole, jsonString(typ)},
			"idlogcorrelationid": {ce.CorrelationID, jsonString(stream)},
			"idlogposition":      {ce.Position, strconv.FormatUint(position, 10)},
			"id":                 {ce.ID, e.ID.String()},
			"subject":            {ce.Subject, eventbus.SubjectUID(stream)},
			"specversion":        {ce.SpecVersion, "1.0"},
		}
		for name, v := range want {
			if v[0] != v[1] {
				t.Errorf("%s decodes as %q, want %q", name, v[0], v[1])
			}
		}
		if ce.StreamVersion != version || ce.SchemaVersion != schema || !ce.Time.Equal(e.RecordedAt) {
			t.Errorf("versions or time decode as %d %d %v, want %d %d %v", ce.StreamVersion, ce.SchemaVersion, ce.Time, version, schema, e.RecordedAt)
		}
		var top map[string]json.RawMessage
		if json.Unmarshal(ce.Data, &top) == nil {
			for _, withheld := range eventbus.ExportWithheldFields {
				if _, ok := top[withheld]; ok {
					t.Errorf("the data carries the withheld field %q: %s", withheld, ce.Data)
				}
			}
		}
		assertStableRoundTrip(t, ce)
	})
}

// assertStableRoundTrip re-encodes a decoded CloudEvent and decodes it again: nothing may change.
func assertStableRoundTrip(t *testing.T, ce eventbus.CloudEvent) {
	t.Helper()
	again, err := json.Marshal(ce)
	if err != nil {
		// A time outside what RFC 3339 can write (year > 9999) cannot have come off the wire.
		if strings.Contains(err.Error(), "Time.MarshalJSON") {
			return
		}
		t.Fatalf("a decoded CloudEvent does not encode: %v: %+v", err, ce)
	}
	var back eventbus.CloudEvent
	if err := json.Unmarshal(again, &back); err != nil {
		t.Fatalf("a re-encoded CloudEvent does not decode: %v: %s", err, again)
	}
	// Data is compared as JSON: encoding/json compacts it on the way out.
	a, b := ce, back
	a.Data, b.Data = compact(ce.Data), compact(back.Data)
	if !reflect.DeepEqual(a, b) || !a.Time.Equal(b.Time) {
		t.Fatalf("round trip changed the event:\n%+v\n%+v", ce, back)
	}
}

// compact is raw as encoding/json writes it: compacted, <, > and & escaped as \u003c, \u003e
// and \u0026 (the same JSON text, spelt differently), and null when absent.
func compact(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 {
		return json.RawMessage("null")
	}
	var buf bytes.Buffer
	if json.Compact(&buf, raw) != nil {
		return raw
	}
	var escaped bytes.Buffer
	json.HTMLEscape(&escaped, buf.Bytes())
	return escaped.Bytes()
}

// jsonString is s as encoding/json reads it back after writing it (invalid UTF-8 replaced).
func jsonString(s string) string {
	b, _ := json.Marshal(s)
	var out string
	_ = json.Unmarshal(b, &out)
	return out
}

// FuzzWithholding: the relay's scan that drops the withheld fields from an event's data gives,
// for any valid JSON the store could hold, what decoding it and dropping them gives: the same
// members with the same values, none withheld, on one line.
func FuzzWithholding(f *testing.F) {
	for _, seed := range []string{
		`{"uid":"ID1","password_hash":"$argon2id$x","role":"member"}`,
		`{"password_hash":"x"}`,
		`{"a":{"password_hash":"nested stays"},"password_hash":"top goes","b":[1,{"c":"]}"}],"d":"\"}"}`,
		`{"password\u005fhash":"escaped","code_hash":"x","n":-1.5e3,"t":true,"f":false,"z":null}`,
		"{\n \"ciphertext\": \"AAEC\",\r\n \"step\": 3,\t\"s\": \"a\\\"b\"\n}",
		`{"refresh_hash":"a","refresh_hash":"b","csrf_hash":"c","x":"\u2028"}`,
		`{}`, `[{"password_hash":"x"}]`, `"password_hash"`, ` {"password_hash" : 1 } `,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if !json.Valid(data) {
			return
		}
		got := eventbus.ExportAppendData(nil, data)
		if !json.Valid(got) || bytes.ContainsAny(got, "\r\n") {
			t.Fatalf("data %q became %q: not JSON on one line", data, got)
		}
		want := decodeUseNumber(t, data)
		obj, isObject := want.(map[string]any)
		if !isObject {
			if !reflect.DeepEqual(decodeUseNumber(t, got), want) {
				t.Fatalf("data %q (no object) became %q", data, got)
			}
			return
		}
		for _, f := range eventbus.ExportWithheldFields {
			delete(obj, f)
		}
		if g := decodeUseNumber(t, got); !reflect.DeepEqual(g, obj) {
			t.Fatalf("data %q became %q: decoded %v, want %v", data, got, g, obj)
		}
	})
}

func decodeUseNumber(t *testing.T, data []byte) any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("decode %q: %v", data, err)
	}
	return v
}
