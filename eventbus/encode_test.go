package eventbus_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	merklecompact "github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/idlog/idlog/eventbus"
	"github.com/idlog/idlog/eventstore"
)

// The relay signs a batch at a time: a message alone is signed as ed25519.Sign signs it; two or
// more share the signature of their RFC 6962 tree's root (computed here with the library's
// compact ranges), each with its own inclusion path, for any key, message and batch size.
func TestBatchSignaturesAreSignaturesOfTreeRoots(t *testing.T) {
	t.Parallel()
	const tree = 16
	for k := range 3 {
		pub, key, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		signer, err := eventbus.NewEventSigner(key)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range []int{1, 2, 3, 7, 16, 17, 32, 33} {
			msgs := make([][]byte, n)
			for i := range msgs {
				msgs[i] = make([]byte, (i*131+k*17)%1500)
				rand.Read(msgs[i])
			}
			values := eventbus.ExportSignBatch(signer, msgs)
			for lo := 0; lo < n; lo += tree {
				hi := min(n, lo+tree)
				if hi-lo == 1 {
					if want := base64.RawURLEncoding.EncodeToString(ed25519.Sign(key, msgs[lo])); string(values[lo]) != want {
						t.Fatalf("key %d, batch of %d, message %d alone in its tree: %s, ed25519.Sign gives %s", k, n, lo, values[lo], want)
					}
					continue
				}
				rng := (&merklecompact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}).NewEmptyRange(0)
				for _, m := range msgs[lo:hi] {
					if err := rng.Append(rfc6962.DefaultHasher.HashLeaf(m), nil); err != nil {
						t.Fatal(err)
					}
				}
				root, err := rng.GetRootHash(nil)
				if err != nil {
					t.Fatal(err)
				}
				size := uint64(hi - lo)
				for i := lo; i < hi; i++ {
					parts := strings.Split(string(values[i]), ".")
					if len(parts) != 4 || parts[1] != fmt.Sprint(i-lo) || parts[2] != fmt.Sprint(size) {
						t.Fatalf("key %d, batch of %d, message %d: value %s, want <sig>.%d.%d.<path>", k, n, i, values[i], i-lo, size)
					}
					sig, err1 := base64.RawURLEncoding.DecodeString(parts[0])
					raw, err2 := base64.RawURLEncoding.DecodeString(parts[3])
					if err1 != nil || err2 != nil || len(raw)%32 != 0 {
						t.Fatalf("message %d: value %s does not decode", i, values[i])
					}
					var path [][]byte
					for ; len(raw) > 0; raw = raw[32:] {
						path = append(path, raw[:32])
					}
					if err := proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(i-lo), size, rfc6962.DefaultHasher.HashLeaf(msgs[i]), path, root); err != nil {
						t.Fatalf("key %d, batch of %d, message %d: %v", k, n, i, err)
					}
					if !ed25519.Verify(pub, eventbus.ExportBatchStatement(size, root), sig) {
						t.Fatalf("key %d, batch of %d, message %d: the signature is not the root's", k, n, i)
					}
				}
			}
		}
	}
}

// The relay's encoder, which signs on every core a chunk at a time, writes each message as the
// one-event path does but for the signature (one per tree), and consumers verify them.
func TestEncodedBatchEqualsSingleEncoding(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 3, 8, 0, 0, 123456000, time.UTC)
	batch := make([]eventstore.Event, 100)
	for i := range batch {
		data := fmt.Sprintf(`{"data":{"language":"en","n":%d}}`, i)
		if i%10 == 0 {
			data = fmt.Sprintf(`{"uid":"ID%010X","password_hash":"$argon2id$v=19$x","role":"member"}`, i)
		}
		batch[i] = eventstore.Event{ID: uuid.Must(uuid.NewV7()), StreamID: fmt.Sprintf("user-ID%010X", i/10), StreamVersion: uint64(i%10 + 1),
			GlobalPosition: uint64(i + 1), Type: "UserDataUpdated", SchemaVersion: 1, Data: json.RawMessage(data),
			Metadata: eventstore.Metadata{ActorUID: "ID0000000001", CorrelationID: "c-" + fmt.Sprint(i)}, RecordedAt: at.Add(time.Duration(i) * time.Second)}
	}
	for i, got := range eventbus.ExportEncodeBatch(testSigner, eventbus.DefaultSource, batch) {
		alone := eventbus.ExportAppendCloudEvent(nil, testSigner, eventbus.DefaultSource, batch[i])
		if g, w := withoutSignature(t, got), withoutSignature(t, alone); !bytes.Equal(g, w) {
			t.Fatalf("event %d encoded in a batch:\n%s\nalone:\n%s", i, got, alone)
		}
		if _, err := eventbus.VerifyEvent(testSigner.Keys(), eventbus.Subject(batch[i]), got); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
	}
}

// withoutSignature is a signed body up to its idlogsignature member.
func withoutSignature(t *testing.T, body []byte) []byte {
	t.Helper()
	i := bytes.LastIndex(body, []byte(`,"idlogsignature":"`))
	if i < 0 {
		t.Fatalf("not signed: %s", body)
	}
	return body[:i]
}
