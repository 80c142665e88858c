package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"testing"

	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/eventstore/eventstoretest"
)

// TestScanRangesYieldTheLogInOrder: however the positions are cut into ranges (one position
// wide, so that the width has to grow; a few; one range holding more than two pages), the pages
// scanRanges yields are the log after `from`, in order, none left out or doubled; a consumer
// that stops early ends the readers; a cancelled scan ends with an error, after a prefix of the
// log and never past a hole.
func TestScanRangesYieldTheLogInOrder(t *testing.T) {
	if os.Getenv(eventstoretest.PostgresEnv) == "" {
		t.Skip("set " + eventstoretest.PostgresEnv)
	}
	ctx := context.Background()
	s, err := Open(ctx, Options{DSN: eventstoretest.PostgresSchema(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for a := range 3 {
		events := make([]eventstore.NewEvent, 8000)
		for i := range events {
			events[i] = eventstore.NewEvent{Type: "Counted", SchemaVersion: 1, Data: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))}
		}
		if _, err := s.Append(ctx, eventstore.Append{Stream: fmt.Sprintf("scan-%d", a), Expected: eventstore.NoStream, Events: events}); err != nil {
			t.Fatal(err)
		}
	}
	var all []eventstore.Event
	for e, err := range s.ReadAll(ctx, 0, eventstore.Filter{}) {
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, e)
	}
	from := all[99].GlobalPosition
	want, target := all[100:], int64(all[len(all)-1].GlobalPosition)
	for _, width := range []int64{1, 1000, 1 << 40} {
		var got []eventstore.Event
		for page, err := range s.scanRanges(ctx, int64(from), target, width) {
			if err != nil {
				t.Fatalf("width %d: %v", width, err)
			}
			if len(page) == 0 || len(page) > scanPage {
				t.Fatalf("width %d: a page of %d events", width, len(page))
			}
			got = append(got, page...)
		}
		if len(got) != len(want) {
			t.Fatalf("width %d: %d events, want %d", width, len(got), len(want))
		}
		for i := range got {
			if !reflect.DeepEqual(got[i], want[i]) {
				t.Fatalf("width %d, event %d:\n got %+v\nwant %+v", width, i, got[i], want[i])
			}
		}
	}
	// Stopping after the first page returns (the readers end) and leaves the pool usable.
	for range s.scanRanges(ctx, int64(from), target, 500) {
		break
	}
	// Cancelled while the readers run: a prefix, then an error.
	cctx, cancel := context.WithCancel(ctx)
	n, failed := 0, false
	for page, err := range s.scanRanges(cctx, int64(from), target, 700) {
		if err != nil {
			failed = true
			break
		}
		for _, e := range page {
			if !reflect.DeepEqual(e, want[n]) {
				t.Fatalf("cancelled scan, event %d: got %+v, want %+v", n, e, want[n])
			}
			n++
		}
		cancel()
	}
	cancel()
	if !failed {
		t.Fatalf("a cancelled scan ended without an error after %d of %d events", n, len(want))
	}
	if err := s.DB().PingContext(ctx); err != nil {
		t.Fatal(err)
	}
}
