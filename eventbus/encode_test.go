package eventbus_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/idlog/idlog/eventbus"
	"github.com/idlog/idlog/eventstore"
)

// The relay signs a batch at a time: the signatures must be ed25519.Sign's, byte for byte, for
// any key, any message and any batch size, each in its own slot.
func TestBatchSignaturesAreEd25519Signatures(t *testing.T) {
	t.Parallel()
	for k := range 3 {
		_, key, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		signer, err := eventbus.NewEventSigner(key)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range []int{1, 2, 7, 32, 33} {
			msgs := make([][]byte, n)
			for i := range msgs {
				msgs[i] = make([]byte, (i*131+k*17)%1500)
				rand.Read(msgs[i])
			}
			for i, sig := range eventbus.ExportSignBatch(signer, msgs) {
				if want := ed25519.Sign(key, msgs[i]); !bytes.Equal(sig, want) {
					t.Fatalf("key %d, batch of %d, message %d (%d bytes): signature %x, ed25519.Sign gives %x", k, n, i, len(msgs[i]), sig, want)
				}
			}
		}
	}
}

// The relay's encoder, which signs on every core a chunk at a time, writes each message exactly
// as the one-event path does, and consumers verify them.
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
		want := eventbus.ExportAppendCloudEvent(nil, testSigner, eventbus.DefaultSource, batch[i])
		if !bytes.Equal(got, want) {
			t.Fatalf("event %d encoded in a batch:\n%s\nalone:\n%s", i, got, want)
		}
		if _, err := eventbus.VerifyEvent(testSigner.Keys(), eventbus.Subject(batch[i]), got); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
	}
}
