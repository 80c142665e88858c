package personaldata

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/idlog/idlog/auth"
	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/eventstore"
)

// rewriteByMap is what rewrite did before it spliced bytes: decode the object, replace the
// members, encode it again. The splice must agree with it on every member's value.
func rewriteByMap(data json.RawMessage, fields []string, f func(string, json.RawMessage) json.RawMessage) map[string]json.RawMessage {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(data, &obj); err != nil || obj == nil {
		return nil
	}
	for _, field := range fields {
		if v, ok := obj[field]; ok && string(v) != "null" {
			obj[field] = f(field, v)
		}
	}
	return obj
}

func TestRewriteSplicesEveryNamedMember(t *testing.T) {
	fields := []string{"email", "data", "name"}
	mark := func(field string, v json.RawMessage) json.RawMessage {
		out, _ := json.Marshal(field + "=" + string(v))
		return out
	}
	for _, data := range []string{
		`{"email":"a@example.com","role":"member","data":{"n":[1,{"x":"}"}]},"name":null}`,
		` { "role" : "x\"email\\" , "email" : "b@example.com" ,"data":[ "]" , 2 ] , "n": -1.5e3 } `,
		`{"em\u0061il":"escaped key","data":true,"other":{"email":"nested stays"}}`,
		`{"data":12,"name":"Zoë \u00e9 <b>","email":false}`,
		`{}`,
		`{"role":"none personal"}`,
	} {
		got, err := rewrite(json.RawMessage(data), fields, func(field string, v json.RawMessage) (json.RawMessage, error) {
			return mark(field, v), nil
		})
		if err != nil {
			t.Fatalf("%s: %v", data, err)
		}
		if !json.Valid(got) {
			t.Fatalf("%s: invalid output %s", data, got)
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(got, &obj); err != nil {
			t.Fatal(err)
		}
		want := rewriteByMap(json.RawMessage(data), fields, mark)
		if msg := membersDiffer(obj, want); msg != "" {
			t.Errorf("%s: %s", data, msg)
		}
	}
	// A field given twice is replaced at each occurrence: no copy stays in plain.
	got, _ := rewrite(json.RawMessage(`{"email":"one","email":"two"}`), fields, func(string, json.RawMessage) (json.RawMessage, error) {
		return json.RawMessage(`"sealed"`), nil
	})
	if string(got) != `{"email":"sealed","email":"sealed"}` {
		t.Errorf("duplicate field = %s", got)
	}
	// Not an object, or not JSON: unchanged.
	for _, data := range []string{`[{"email":"x"}]`, `"email"`, `{"email":"x"`, `{"email":}`, ``, `null`} {
		got, err := rewrite(json.RawMessage(data), fields, func(string, json.RawMessage) (json.RawMessage, error) {
			t.Fatalf("%q: rewrote a member", data)
			return nil, nil
		})
		if err != nil || string(got) != data {
			t.Errorf("%q = %q, %v", data, got, err)
		}
	}
}

// membersDiffer says how the members of got differ from want's, each compared as decoded JSON,
// or "" when they agree.
func membersDiffer(got, want map[string]json.RawMessage) string {
	if len(got) != len(want) {
		return fmt.Sprintf("%d members, want %d", len(got), len(want))
	}
	for k, v := range want {
		var a, b any
		json.Unmarshal(v, &a)
		json.Unmarshal(got[k], &b)
		if !bytes.Equal(mustJSON(a), mustJSON(b)) {
			return fmt.Sprintf("member %s = %s, want %s", k, got[k], v)
		}
	}
	return ""
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// Sealing a registration leaves no personal value in plain, keeps the other members' bytes, and
// opens back to the very bytes appended.
func TestSealEventRoundTrip(t *testing.T) {
	key := make([]byte, auth.KeySize)
	rand.Read(key)
	s, err := auth.NewSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	c := codec{reg: domain.NewEventRegistry()}
	data, _ := json.Marshal(domain.UserRegistered{UserID: "ID0000000001", Email: "erin@example.com", Username: "erin", PasswordHash: "h", Role: domain.RoleMember, Data: json.RawMessage(`{"n":"mauve <b>"}`)})
	e := eventstore.NewEvent{Type: "UserRegistered", SchemaVersion: 1, Data: data, Metadata: eventstore.Metadata{IP: "203.0.113.9", UserAgent: "UA/1"}}
	sealed, err := c.sealEvent(s, "ID0000000001", e)
	if err != nil {
		t.Fatal(err)
	}
	for _, plain := range []string{"erin", "mauve", "203.0.113.9", "UA/1"} {
		if strings.Contains(string(sealed.Data), plain) || strings.Contains(sealed.Metadata.IP+sealed.Metadata.UserAgent, plain) {
			t.Errorf("%q in plain: %s %+v", plain, sealed.Data, sealed.Metadata)
		}
	}
	if !strings.Contains(string(sealed.Data), `"uid":"ID0000000001"`) || !strings.Contains(string(sealed.Data), `"role":"member"`) {
		t.Errorf("other members changed: %s", sealed.Data)
	}
	opened, err := c.openEvent(s, "ID0000000001", eventstore.Event{Type: sealed.Type, Data: sealed.Data, Metadata: sealed.Metadata})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(opened.Data, data) || opened.Metadata.IP != "203.0.113.9" || opened.Metadata.UserAgent != "UA/1" {
		t.Errorf("opened = %s %+v, want %s", opened.Data, opened.Metadata, data)
	}
	// Two seals of the same value differ (random nonces).
	again, _ := c.sealEvent(s, "ID0000000001", e)
	if bytes.Equal(again.Data, sealed.Data) {
		t.Error("two seals gave the same bytes")
	}
}

// HashKey is the first 128 bits of HMAC-SHA-256 under the derived key, the same however often and concurrently it runs.
func TestHashKeyIsKeyedHMAC(t *testing.T) {
	secret := make([]byte, 32)
	rand.Read(secret)
	s, err := Wrap(Options{Store: nopStore{}, Keys: &Keys{}, Registry: domain.NewEventRegistry(), Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	m := hmac.New(sha256.New, derive(secret, "unique keys"))
	m.Write([]byte("email:erin@example.com"))
	want := "email#" + base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:16])
	done := make(chan bool)
	for range 4 {
		go func() {
			ok := true
			for range 200 {
				ok = ok && s.HashKey("email:erin@example.com") == want && s.HashKey("username:x") != want
			}
			done <- ok
		}()
	}
	for range 4 {
		if !<-done {
			t.Error("HashKey disagrees with HMAC-SHA-256")
		}
	}
	if got := s.HashKey("plain"); got != "plain" {
		t.Errorf("HashKey(plain) = %q", got)
	}
}

// nopStore stands for a store HashKey never touches.
type nopStore struct{ eventstore.Store }

// FuzzRewrite holds the splice to the decode-and-encode it replaced on any input: the output is
// valid JSON whenever the input is, and every named member that is not null carries the
// replacement, wherever and however often it occurs, so no personal field stays in plain.
func FuzzRewrite(f *testing.F) {
	for _, s := range []string{
		`{"email":"a@example.com","role":"member","data":{"n":[1,{"x":"}"}]},"name":null}`,
		` { "role" : "x\"email\\" , "email" : "b@example.com" ,"data":[ "]" , 2 ] } `,
		`{"em\u0061il":"escaped key","other":{"email":"nested stays"}}`,
		`{"email":"one","email":"two"}`, `[{"email":"x"}]`, `{"email":}`, `null`,
	} {
		f.Add([]byte(s))
	}
	fields := []string{"email", "data", "name"}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := rewrite(json.RawMessage(data), fields, func(string, json.RawMessage) (json.RawMessage, error) {
			return json.RawMessage(`"SEALED"`), nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if !json.Valid(data) {
			if !bytes.Equal(got, data) {
				t.Fatalf("invalid input %q changed to %q", data, got)
			}
			return
		}
		if !json.Valid(got) {
			t.Fatalf("%q: invalid output %q", data, got)
		}
		want := rewriteByMap(json.RawMessage(data), fields, func(string, json.RawMessage) json.RawMessage { return json.RawMessage(`"SEALED"`) })
		var obj map[string]json.RawMessage
		if json.Unmarshal(got, &obj) != nil || want == nil {
			if want != nil || !bytes.Equal(got, data) {
				t.Fatalf("%q: became %q", data, got)
			}
			return
		}
		if msg := membersDiffer(obj, want); msg != "" {
			t.Fatalf("%q: %s", data, msg)
		}
		// No occurrence of a named member keeps its plain value, duplicates included.
		dec := json.NewDecoder(bytes.NewReader(got))
		if tok, _ := dec.Token(); tok != json.Delim('{') {
			return
		}
		for dec.More() {
			k, _ := dec.Token()
			var v json.RawMessage
			if dec.Decode(&v) != nil {
				t.Fatalf("%q: output undecodable", got)
			}
			if key, _ := k.(string); slices.Contains(fields, key) && string(v) != "null" && string(v) != `"SEALED"` {
				t.Fatalf("%q: member %s stayed %s", data, key, v)
			}
		}
	})
}
