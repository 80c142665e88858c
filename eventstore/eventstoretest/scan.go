package eventstoretest

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

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
	// Twelve thousand events read six times under the race detector: on a loaded 2-core machine
	// that takes minutes, and this is a test of what is read, not of how fast.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	t.Cleanup(cancel)
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

// testScanAllLateCommits: while appends commit out of their positions' order (some are held
// before their commit), every ScanAll yields a prefix of the final log: it never yields an event
// and leaves out one below it that commits later.
func testScanAllLateCommits(t *testing.T, b Backend) {
	hooks := Hooks{BeforeCommit: func(ctx context.Context, a eventstore.Append) {
		if strings.HasPrefix(a.Stream, "slow-") {
			time.Sleep(time.Duration(rand.IntN(30)) * time.Millisecond)
		}
	}}
	s, _ := newStore(t, b, hooks)
	sc, ok := s.(eventstore.Scanner)
	if !ok {
		t.Skip("the store does not implement eventstore.Scanner")
	}
	const writers, perWriter = 6, 25
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			prefix := "fast-"
			if w%2 == 0 {
				prefix = "slow-"
			}
			for i := range perWriter {
				stream := fmt.Sprintf("%s%d", prefix, w)
				if _, err := s.Append(testCtx(t), eventstore.Append{Stream: stream, Expected: eventstore.Any,
					Events: []eventstore.NewEvent{ev("Raced", map[string]int{"w": w, "i": i})}}); err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
			}
		})
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	var scans [][]eventstore.Event
	for running := true; running; {
		select {
		case <-finished:
			running = false
		default:
		}
		scans = append(scans, collect(t, sc.ScanAll(testCtx(t), 0)))
	}
	final := collect(t, s.ReadAll(testCtx(t), 0, eventstore.Filter{}))
	if len(final) != writers*perWriter {
		t.Fatalf("the log holds %d events, want %d", len(final), writers*perWriter)
	}
	for n, scan := range scans {
		for i, e := range scan {
			if i >= len(final) || e.ID != final[i].ID {
				t.Fatalf("scan %d of %d, event %d is %s at position %d: not the final log's event there (a later commit below it was skipped)",
					n+1, len(scans), i, e.ID, e.GlobalPosition)
			}
		}
	}
	if last := scans[len(scans)-1]; len(last) != len(final) {
		t.Fatalf("the scan after the last append yielded %d events, want %d", len(last), len(final))
	}
}
