package esdb_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/eventstore/esdb"
	"github.com/idlog/idlog/eventstore/eventstoretest"
)

const skipMessage = "EventStoreDB conformance suite SKIPPED: set IDLOG_TEST_ESDB_URL=esdb://127.0.0.1:2113?tls=false to run it"

// TestConformance runs the shared event store suite against a real EventStoreDB. Every store the
// suite asks for gets a namespace of its own on the one server; the server keeps the test streams
// afterwards (EventStoreDB has no cheap way to drop a namespace), which a throwaway server makes
// moot. The LargeEvent test appends a 1 MiB event: start the server with a MaxAppendSize above
// EventStoreDB's 1 MiB default (e.g. EVENTSTORE_MAX_APPEND_SIZE=8388608).
func TestConformance(t *testing.T) {
	url := os.Getenv("IDLOG_TEST_ESDB_URL")
	if url == "" {
		fmt.Fprintln(os.Stderr, "*** "+skipMessage+" ***")
		t.Skip(skipMessage)
	}
	eventstoretest.Run(t, eventstoretest.Backend{
		Features: eventstoretest.Features{Checkpoints: true, KeyOwners: true},
		New: func(t *testing.T, _ eventstoretest.Hooks) (eventstore.Store, func(t *testing.T) eventstore.Store) {
			ns := namespace(t)
			open := func(t *testing.T) eventstore.Store {
				t.Helper()
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				s, err := esdb.Open(ctx, esdb.Options{URL: url, Namespace: ns})
				if err != nil {
					t.Fatalf("open EventStoreDB store: %v", err)
				}
				return s
			}
			return open(t), open
		},
	})
}

// namespace returns a fresh stream-name prefix, so each store sees only its own events.
func namespace(t *testing.T) string {
	t.Helper()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "t" + hex.EncodeToString(b) + "-"
}
