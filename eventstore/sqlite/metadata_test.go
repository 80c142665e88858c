package sqlite

import (
	"encoding/json"
	"testing"

	"github.com/idlog/idlog/eventstore"
)

// metadataSamples are stored metadata columns: what the writer produces, and what only an edit of
// the file can (the fast path must hand all of those to json.Unmarshal).
var metadataSamples = []string{
	`{}`,
	`{"actor_uid":"ID0000000001","actor_role":"member","ip":"192.0.2.7","user_agent":"Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0","correlation_id":"c","causation_id":"d","idempotency_key":"k-1"}`,
	`{"user_agent":"a \u003cb\u003e \u0026 \u2028"}`,
	`{"ip":"é ✓ 𝄞"}`,
	`{"ip":""}`,
	`{"ip":"a","ip":"b"}`,
	`{"IP":"upper case key"}`,
	`{"other":"x","ip":"y"}`,
	`{"ip":1}`,
	`{"ip":null}`,
	`{"ip":"a",}`,
	`{"ip":"a" }`,
	`{ "ip":"a"}`,
	`{"ip":"tab	inside"}`,
	"{\"ip\":\"bad \xff utf-8\"}",
	"{\"ip\xff\":\"x\"}",
	`{"ip":"a"`,
	`{"ip":"a"}}`,
	`{"ip" "a"}`,
	`{"ip":"a""actor_uid":"b"}`,
	`{"ip":"\"quoted\""}`,
	`{"ip":"a\\b"}`,
	`[]`,
	`"x"`,
	``,
	`{`,
}

// TestDecodeMetadataMatchesJSON: the fast path decodes every stored form exactly as
// json.Unmarshal does, and fails where it fails.
func TestDecodeMetadataMatchesJSON(t *testing.T) {
	t.Parallel()
	for _, s := range metadataSamples {
		checkMetadata(t, []byte(s))
	}
}

// TestDecodeMetadataFastPath: the writer's own output takes the fast path (the point of it).
func TestDecodeMetadataFastPath(t *testing.T) {
	t.Parallel()
	for _, m := range []eventstore.Metadata{
		{},
		{ActorUID: "ID0000000001", ActorRole: "member", IP: "192.0.2.7", UserAgent: "Mozilla/5.0 (X11; Linux x86_64)",
			CorrelationID: "9c1e", CausationID: "ab", IdempotencyKey: "k-1"},
		{IP: "2001:db8::1", UserAgent: "curl/8.0 é"},
	} {
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		var got eventstore.Metadata
		if !decodePlainMetadata(b, &got) || got != m {
			t.Errorf("%s: fast path gave %+v, want %+v", b, got, m)
		}
	}
}

func FuzzDecodeMetadata(f *testing.F) {
	for _, s := range metadataSamples {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkMetadata(t, b) })
}

func checkMetadata(t *testing.T, b []byte) {
	t.Helper()
	var want, got eventstore.Metadata
	wantErr := json.Unmarshal(b, &want)
	gotErr := decodeMetadata(b, &got)
	if (wantErr != nil) != (gotErr != nil) {
		t.Fatalf("%q: error %v, json.Unmarshal says %v", b, gotErr, wantErr)
	}
	if wantErr == nil && got != want {
		t.Fatalf("%q: decoded %+v, json.Unmarshal gives %+v", b, got, want)
	}
}
