package eventstoretest

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"

	"github.com/idlog/idlog/eventstore"
)

// testScanAll: a store that implements eventstore.Scanner yields from ScanAll exactly what ReadAll
// yields, envelope for envelope, over more than one of its pages, from the start, the middle and
// the end of the log.
func testScanAll(t *testing.T, b Backend) {
	s, _ := newStore(t, b, Hooks{})
	sc, ok := s.(eventstore.Scanner)
	if !ok {
		t.Skip("the store does not implement eventstore.Scanner")
	}
	ctx := testCtx(t)
	if got := collect(t, sc.ScanAll(ctx, 0)); len(got) != 0 {
		t.Fatalf("ScanAll of an empty log yielded %d events", len(got))
	}
	// Metadata in every form a writer may store: plain, with characters JSON escapes, empty.
	metas := []eventstore.Metadata{
		{ActorUID: "IDABCDEF0123", ActorRole: "member", IP: "192.0.2.7", UserAgent: "Mozilla/5.0 (X11; Linux x86_64)",
			CorrelationID: "c-1", CausationID: "c-0", IdempotencyKey: "k-1"},
		{UserAgent: "a <b> & \"c\" \\ \u2028 é\t", ActorUID: eventstore.ActorSystem},
		{},
	}
	const perAppend = 6001 // two appends are more than a page of either store's scan
	for a := range 2 {
		events := make([]eventstore.NewEvent, perAppend)
		for i := range events {
			events[i] = eventstore.NewEvent{Type: "Counted", SchemaVersion: 1 + i%2,
				Data:     json.RawMessage(fmt.Sprintf(`{"n": %d, "s":"\u00e9"}`, i)),
				Metadata: metas[i%len(metas)]}
		}
		expected := eventstore.NoStream
		if a > 0 {
			expected = eventstore.Exactly(perAppend)
		}
		mustAppend(t, s, eventstore.Append{Stream: "scan-a", Expected: expected, Events: events})
		mustAppend(t, s, eventstore.Append{Stream: streamName("scan"), Expected: eventstore.NoStream,
			Events: []eventstore.NewEvent{ev("Other", map[string]int{"a": a})}})
	}
	all := collect(t, s.ReadAll(ctx, 0, eventstore.Filter{}))
	if len(all) != 2*perAppend+2 {
		t.Fatalf("ReadAll yielded %d events, want %d", len(all), 2*perAppend+2)
	}
	for _, from := range []int{0, 1, perAppend + 1, len(all) - 1, len(all)} {
		after := uint64(0)
		if from > 0 {
			after = all[from-1].GlobalPosition
		}
		got := collect(t, sc.ScanAll(ctx, after))
		want := all[from:]
		if len(got) != len(want) {
			t.Fatalf("ScanAll after %d yielded %d events, ReadAll %d", after, len(got), len(want))
		}
		for i := range got {
			if !reflect.DeepEqual(got[i], want[i]) {
				t.Fatalf("ScanAll after %d, event %d:\n got %+v\nwant %+v", after, i, got[i], want[i])
			}
		}
	}
}
