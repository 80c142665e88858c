package eventstoretest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/idlog/idlog/eventstore"
)

// Run runs the whole conformance suite against a backend. Every test gets storage of its own and
// runs in parallel with the others.
func Run(t *testing.T, b Backend) {
	tests := []struct {
		name string
		fn   func(t *testing.T, b Backend)
	}{
		{"ReadBackEnvelope", testReadBackEnvelope},
		{"ExpectedVersion", testExpectedVersion},
		{"InvalidAppend", testInvalidAppend},
		{"InvalidText", testInvalidText},
		{"IdempotentReappend", testIdempotentReappend},
		{"ConcurrentAppendsOneStream", testConcurrentAppendsOneStream},
		{"ConcurrentRetriesDenseVersions", testConcurrentRetriesDenseVersions},
		{"UniqueKeyRace", testUniqueKeyRace},
		{"UniqueKeyRelease", testUniqueKeyRelease},
		{"UniqueKeyAtomicWithEvents", testUniqueKeyAtomicWithEvents},
		{"LateCommitsNeverSkipped", testLateCommitsNeverSkipped},
		{"SubscribeFromMiddle", testSubscribeFromMiddle},
		{"Filters", testFilters},
		{"ReadStreamAfterVersion", testReadStreamAfterVersion},
		{"LargeEvent", testLargeEvent},
		{"Cancellation", testCancellation},
		{"SurvivesReopen", testSurvivesReopen},
		{"Closed", testClosed},
		{"Checkpoints", testCheckpoints},
		{"KeyOwners", testKeyOwners},
		{"ScanAll", testScanAll},
		{"ScanAllLateCommits", testScanAllLateCommits},
		{"DataKeys", testDataKeys},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, b)
		})
	}
}

func newStore(t *testing.T, b Backend, h Hooks) (eventstore.Store, func(t *testing.T) eventstore.Store) {
	t.Helper()
	s, reopen := b.New(t, h)
	t.Cleanup(func() { s.Close() })
	return s, reopen
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// ev makes an event with a recognisable body.
func ev(typ string, body any) eventstore.NewEvent {
	data, err := json.Marshal(body)
	if err != nil {
		panic(err)
	}
	return eventstore.NewEvent{Type: typ, SchemaVersion: 1, Data: data}
}

func streamName(prefix string) string { return prefix + "-" + uuid.NewString()[:8] }

func mustAppend(t *testing.T, s eventstore.Store, a eventstore.Append) eventstore.AppendResult {
	t.Helper()
	r, err := s.Append(testCtx(t), a)
	if err != nil {
		t.Fatalf("append to %q: %v", a.Stream, err)
	}
	return r
}

func collect(t *testing.T, seq func(func(eventstore.Event, error) bool)) []eventstore.Event {
	t.Helper()
	var out []eventstore.Event
	for e, err := range seq {
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		out = append(out, e)
	}
	return out
}

// take reads n events from a subscription, failing the test if they do not come in time.
func take(t *testing.T, s eventstore.Store, after uint64, f eventstore.Filter, n int) []eventstore.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []eventstore.Event
	if n == 0 {
		return out
	}
	for e, err := range s.Subscribe(ctx, after, f) {
		if err != nil {
			t.Fatalf("subscribe after %d: got %d of %d events, then %v", after, len(out), n, err)
		}
		out = append(out, e)
		if len(out) == n {
			break
		}
	}
	return out
}

func streamVersion(t *testing.T, s eventstore.Store, stream string) uint64 {
	t.Helper()
	var v uint64
	for e, err := range s.ReadStream(testCtx(t), stream, 0) {
		if err != nil {
			t.Fatalf("read stream %q: %v", stream, err)
		}
		v = e.StreamVersion
	}
	return v
}

func testReadBackEnvelope(t *testing.T, b Backend) {
	s, _ := newStore(t, b, Hooks{})
	stream := streamName("user")
	meta := eventstore.Metadata{
		ActorUID: "IDABCDEF0123", ActorRole: "admin", IP: "203.0.113.7", UserAgent: "curl/8.5 \"quoted\" ünïcode",
		CorrelationID: uuid.NewString(), CausationID: uuid.NewString(), IdempotencyKey: "key-1",
	}
	id1, _ := uuid.NewV7()
	want := []eventstore.NewEvent{
		{ID: id1, Type: "UserRegistered", SchemaVersion: 1, Data: json.RawMessage(`{"email":"a@example.com","n":1}`), Metadata: meta},
		// Odd but valid JSON must come back byte for byte: key order, spacing, escapes.
		{Type: "LabelAdded", SchemaVersion: 3, Data: json.RawMessage(`{ "z":1, "a":[true,null,"\u00e9\n"] }`), Metadata: eventstore.Metadata{ActorUID: eventstore.ActorSystem}},
	}
	res := mustAppend(t, s, eventstore.Append{Stream: stream, Expected: eventstore.NoStream, Events: want})
	if res.FirstVersion != 1 || res.LastVersion != 2 {
		t.Errorf("append result versions = %d..%d, want 1..2", res.FirstVersion, res.LastVersion)
	}
	if res.FirstPosition == 0 || res.LastPosition <= res.FirstPosition {
		t.Errorf("append result positions = %d..%d, want 0 < first < last", res.FirstPosition, res.LastPosition)
	}
	if res.RecordedAt.IsZero() || time.Since(res.RecordedAt) > time.Minute || res.RecordedAt.Location() != time.UTC {
		t.Errorf("recorded at = %v, want a recent UTC time", res.RecordedAt)
	}

	check := func(how string, got []eventstore.Event) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: %d events, want %d", how, len(got), len(want))
		}
		for i, g := range got {
			w := want[i]
			if w.ID != uuid.Nil && g.ID != w.ID {
				t.Errorf("%s[%d].ID = %s, want %s", how, i, g.ID, w.ID)
			}
			if g.ID == uuid.Nil || g.ID.Version() != 7 {
				t.Errorf("%s[%d].ID = %s, want a UUIDv7", how, i, g.ID)
			}
			if g.StreamID != stream || g.StreamVersion != uint64(i+1) {
				t.Errorf("%s[%d] stream = %s@%d, want %s@%d", how, i, g.StreamID, g.StreamVersion, stream, i+1)
			}
			if g.Type != w.Type || g.SchemaVersion != w.SchemaVersion {
				t.Errorf("%s[%d] type = %s v%d, want %s v%d", how, i, g.Type, g.SchemaVersion, w.Type, w.SchemaVersion)
			}
			if !bytes.Equal(g.Data, w.Data) {
				t.Errorf("%s[%d].Data = %s, want %s byte for byte", how, i, g.Data, w.Data)
			}
			if g.Metadata != w.Metadata {
				t.Errorf("%s[%d].Metadata = %+v, want %+v", how, i, g.Metadata, w.Metadata)
			}
			if !g.RecordedAt.Equal(res.RecordedAt) {
				t.Errorf("%s[%d].RecordedAt = %v, want %v (the append's)", how, i, g.RecordedAt, res.RecordedAt)
			}
		}
		if got[0].GlobalPosition != res.FirstPosition || got[1].GlobalPosition != res.LastPosition {
			t.Errorf("%s positions = %d, %d, want %d, %d", how, got[0].GlobalPosition, got[1].GlobalPosition, res.FirstPosition, res.LastPosition)
		}
	}
	fromStream := collect(t, s.ReadStream(testCtx(t), stream, 0))
	check("ReadStream", fromStream)
	check("ReadAll", collect(t, s.ReadAll(testCtx(t), 0, eventstore.Filter{})))
	check("Subscribe", take(t, s, 0, eventstore.Filter{}, 2))
	if fromStream[1].ID == fromStream[0].ID {
		t.Error("two events share one id")
	}
}

func testExpectedVersion(t *testing.T, b Backend) {
	s, _ := newStore(t, b, Hooks{})
	ctx := testCtx(t)
	one := func() []eventstore.NewEvent { return []eventstore.NewEvent{ev("Tested", map[string]int{"n": 1})} }
	cases := []struct {
		name     string
		existing int // events already in the stream
		expected eventstore.ExpectedVersion
		ok       bool
	}{
		{"no stream on new", 0, eventstore.NoStream, true},
		{"Exactly(0) on new", 0, eventstore.Exactly(0), true},
		{"no stream on existing", 2, eventstore.NoStream, false},
		{"any on new", 0, eventstore.Any, true},
		{"any on existing", 3, eventstore.Any, true},
		{"exact on new", 0, eventstore.Exactly(1), false},
		{"exact right", 2, eventstore.Exactly(2), true},
		{"exact behind", 3, eventstore.Exactly(2), false},
		{"exact ahead", 1, eventstore.Exactly(2), false},
	}
	for _, c := range cases {
		stream := streamName("ev")
		for i := 0; i < c.existing; i++ {
			mustAppend(t, s, eventstore.Append{Stream: stream, Expected: eventstore.Any, Events: one()})
		}
		res, err := s.Append(ctx, eventstore.Append{Stream: stream, Expected: c.expected, Events: one()})
		after := streamVersion(t, s, stream)
		if c.ok {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
				continue
			}
			if res.LastVersion != uint64(c.existing+1) || after != uint64(c.existing+1) {
				t.Errorf("%s: version %d (stream at %d), want %d", c.name, res.LastVersion, after, c.existing+1)
			}
			continue
		}
		if !errors.Is(err, eventstore.ErrConcurrency) {
			t.Errorf("%s: err = %v, want ErrConcurrency", c.name, err)
		}
		if after != uint64(c.existing) {
			t.Errorf("%s: a rejected append changed the stream: version %d, want %d", c.name, after, c.existing)
		}
	}
}

func testInvalidAppend(t *testing.T, b Backend) {
	s, _ := newStore(t, b, Hooks{})
	ctx := testCtx(t)
	good := ev("Tested", 1)
	dup, _ := uuid.NewV7()
	cases := map[string]eventstore.Append{
		"empty stream":         {Stream: "", Expected: eventstore.Any, Events: []eventstore.NewEvent{good}},
		"no events":            {Stream: "s-1", Expected: eventstore.Any},
		"no type":              {Stream: "s-2", Expected: eventstore.Any, Events: []eventstore.NewEvent{{SchemaVersion: 1, Data: []byte(`{}`)}}},
		"schema version 0":     {Stream: "s-3", Expected: eventstore.Any, Events: []eventstore.NewEvent{{Type: "T", Data: []byte(`{}`)}}},
		"bad JSON":             {Stream: "s-4", Expected: eventstore.Any, Events: []eventstore.NewEvent{{Type: "T", SchemaVersion: 1, Data: []byte(`{"a":`)}}},
		"expected -2":          {Stream: "s-5", Expected: -2, Events: []eventstore.NewEvent{good}},
		"id twice":             {Stream: "s-6", Expected: eventstore.Any, Events: []eventstore.NewEvent{{ID: dup, Type: "T", SchemaVersion: 1, Data: []byte(`1`)}, {ID: dup, Type: "T", SchemaVersion: 1, Data: []byte(`2`)}}},
		"empty key to claim":   {Stream: "s-7", Expected: eventstore.Any, Events: []eventstore.NewEvent{good}, Claim: []string{""}},
		"too many in one go":   {Stream: "s-8", Expected: eventstore.Any, Events: make([]eventstore.NewEvent, eventstore.MaxEventsPerAppend+1)},
		"empty key to release": {Stream: "s-9", Expected: eventstore.Any, Events: []eventstore.NewEvent{good}, Release: []string{""}},
	}
	for name, a := range cases {
		if _, err := s.Append(ctx, a); !errors.Is(err, eventstore.ErrInvalidAppend) {
			t.Errorf("%s: err = %v, want ErrInvalidAppend", name, err)
		}
	}
	if got := collect(t, s.ReadAll(ctx, 0, eventstore.Filter{})); len(got) != 0 {
		t.Errorf("invalid appends stored %d events", len(got))
	}
}

// Text that is not valid UTF-8, or holds NUL, never enters the log, wherever it hides: PostgreSQL
// would refuse it with a 500, SQLite would keep it and serve invalid JSON to every reader.
func testInvalidText(t *testing.T, b Backend) {
	s, _ := newStore(t, b, Hooks{})
	ctx := testCtx(t)
	raw := func(data string) eventstore.NewEvent {
		return eventstore.NewEvent{Type: "T", SchemaVersion: 1, Data: []byte(data)}
	}
	good := raw(`{"a":"b"}`)
	withMeta := func(m eventstore.Metadata) eventstore.NewEvent { e := good; e.Metadata = m; return e }
	cases := map[string]eventstore.Append{
		"0xFF in data":             {Stream: "t-1", Expected: eventstore.Any, Events: []eventstore.NewEvent{raw("{\"data\":\"\xff\"}")}},
		"truncated rune in data":   {Stream: "t-2", Expected: eventstore.Any, Events: []eventstore.NewEvent{raw("{\"d\":\"\xc3\"}")}},
		"\\u0000 in data":          {Stream: "t-3", Expected: eventstore.Any, Events: []eventstore.NewEvent{raw(`{"d":"a\u0000b"}`)}},
		"\\u0000 in a key":         {Stream: "t-4", Expected: eventstore.Any, Events: []eventstore.NewEvent{raw(`{"\u0000":1}`)}},
		"lone surrogate in data":   {Stream: "t-5", Expected: eventstore.Any, Events: []eventstore.NewEvent{raw(`{"d":"\ud800"}`)}},
		"0xFF in the user agent":   {Stream: "t-6", Expected: eventstore.Any, Events: []eventstore.NewEvent{withMeta(eventstore.Metadata{UserAgent: "curl\xff"})}},
		"NUL in the actor":         {Stream: "t-7", Expected: eventstore.Any, Events: []eventstore.NewEvent{withMeta(eventstore.Metadata{ActorUID: "ID\x00"})}},
		"0xFF in the type":         {Stream: "t-8", Expected: eventstore.Any, Events: []eventstore.NewEvent{{Type: "T\xff", SchemaVersion: 1, Data: []byte(`1`)}}},
		"0xFF in the stream":       {Stream: "t-9\xff", Expected: eventstore.Any, Events: []eventstore.NewEvent{good}},
		"NUL in a key to claim":    {Stream: "t-10", Expected: eventstore.Any, Events: []eventstore.NewEvent{good}, Claim: []string{"email:a\x00@b"}},
		"0xFF in a key to release": {Stream: "t-11", Expected: eventstore.Any, Events: []eventstore.NewEvent{good}, Release: []string{"email:\xff"}},
	}
	for name, a := range cases {
		if _, err := s.Append(ctx, a); !errors.Is(err, eventstore.ErrInvalidText) || !errors.Is(err, eventstore.ErrInvalidAppend) {
			t.Errorf("%s: err = %v, want ErrInvalidText", name, err)
		}
	}
	if got := collect(t, s.ReadAll(ctx, 0, eventstore.Filter{})); len(got) != 0 {
		t.Errorf("appends with invalid text stored %d events", len(got))
	}
	// What looks like an escape but is not one, and text outside the ASCII range, are kept as is.
	fine := raw(`{"d":"\\u0000 is six characters","e":"\ud83d\ude00 é 😀"}`)
	mustAppend(t, s, eventstore.Append{Stream: "t-ok", Expected: eventstore.NoStream, Events: []eventstore.NewEvent{fine}})
	got := collect(t, s.ReadStream(ctx, "t-ok", 0))
	if len(got) != 1 || !bytes.Equal(got[0].Data, fine.Data) {
		t.Errorf("read back %d events, want the one appended with its exact data %s", len(got), fine.Data)
	}
}

func testIdempotentReappend(t *testing.T, b Backend) {
	s, _ := newStore(t, b, Hooks{})
	ctx := testCtx(t)
	stream := streamName("idem")
	mustAppend(t, s, eventstore.Append{Stream: stream, Expected: eventstore.NoStream, Events: []eventstore.NewEvent{ev("First", 0)}})
	events := []eventstore.NewEvent{ev("A", 1), ev("B", 2)}
	for i := range events {
		events[i].ID, _ = uuid.NewV7()
	}
	a := eventstore.Append{Stream: stream, Expected: eventstore.Exactly(1), Events: events}
	first := mustAppend(t, s, a)
	for range 3 {
		again, err := s.Append(ctx, a)
		if err != nil {
			t.Fatalf("re-append: %v", err)
		}
		if again.FirstVersion != first.FirstVersion || again.LastVersion != first.LastVersion ||
			again.FirstPosition != first.FirstPosition || again.LastPosition != first.LastPosition || !again.RecordedAt.Equal(first.RecordedAt) {
			t.Errorf("re-append result = %+v, want the original %+v", again, first)
		}
	}
	// A retry whose expected version is now stale is still the same append, recognised by its ids.
	if _, err := s.Append(ctx, eventstore.Append{Stream: stream, Expected: eventstore.NoStream, Events: events}); err != nil {
		t.Errorf("retry with a stale expected version: %v", err)
	}
	if got := collect(t, s.ReadStream(ctx, stream, 0)); len(got) != 3 {
		t.Fatalf("stream holds %d events after re-appends, want 3", len(got))
	}

	// Some ids stored, some new: not a faithful retry, nothing stored.
	fresh := ev("C", 3)
	fresh.ID, _ = uuid.NewV7()
	_, err := s.Append(ctx, eventstore.Append{Stream: stream, Expected: eventstore.Any, Events: []eventstore.NewEvent{events[0], fresh}})
	if !errors.Is(err, eventstore.ErrDuplicateEvent) && !errors.Is(err, eventstore.ErrConcurrency) {
		t.Errorf("partial re-append: err = %v, want ErrDuplicateEvent", err)
	}
	_, err = s.Append(ctx, eventstore.Append{Stream: stream, Expected: eventstore.Any, Events: []eventstore.NewEvent{fresh, events[1]}})
	if !errors.Is(err, eventstore.ErrDuplicateEvent) && !errors.Is(err, eventstore.ErrConcurrency) {
		t.Errorf("partial re-append, stored id last: err = %v, want ErrDuplicateEvent", err)
	}
	// The same ids in another stream: not a retry either.
	if b.Features.GlobalEventIDs {
		_, err = s.Append(ctx, eventstore.Append{Stream: streamName("other"), Expected: eventstore.Any, Events: events})
		if !errors.Is(err, eventstore.ErrDuplicateEvent) && !errors.Is(err, eventstore.ErrConcurrency) {
			t.Errorf("same ids, other stream: err = %v, want ErrDuplicateEvent", err)
		}
	} else {
		t.Log("backend does not declare GlobalEventIDs: the same ids in another stream are not checked")
	}
	if got := collect(t, s.ReadAll(ctx, 0, eventstore.Filter{})); len(got) != 3 {
		t.Errorf("log holds %d events, want 3", len(got))
	}
}

func testConcurrentAppendsOneStream(t *testing.T, b Backend) {
	s, _ := newStore(t, b, Hooks{})
	ctx := testCtx(t)
	stream := streamName("race")
	mustAppend(t, s, eventstore.Append{Stream: stream, Expected: eventstore.NoStream, Events: []eventstore.NewEvent{ev("Opened", 0)}})
	const n = 50
	var wins, conflicts atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, err := s.Append(ctx, eventstore.Append{Stream: stream, Expected: eventstore.Exactly(1), Events: []eventstore.NewEvent{ev("Raced", i)}})
			switch {
			case err == nil:
				wins.Add(1)
			case errors.Is(err, eventstore.ErrConcurrency):
				conflicts.Add(1)
			default:
				t.Errorf("appender %d: %v", i, err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if wins.Load() != 1 || conflicts.Load() != n-1 {
		t.Errorf("%d wins and %d conflicts, want 1 and %d", wins.Load(), conflicts.Load(), n-1)
	}
	if v := streamVersion(t, s, stream); v != 2 {
		t.Errorf("stream at version %d, want 2", v)
	}
}

func testConcurrentRetriesDenseVersions(t *testing.T, b Backend) {
	s, _ := newStore(t, b, Hooks{})
	ctx := testCtx(t)
	stream := streamName("dense")
	const n = 50
	var conflicts atomic.Int32
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e := ev("Counted", i)
			e.ID, _ = uuid.NewV7()
			for attempt := 0; ; attempt++ {
				v := streamVersion(t, s, stream)
				_, err := s.Append(ctx, eventstore.Append{Stream: stream, Expected: eventstore.Exactly(v), Events: []eventstore.NewEvent{e}})
				if err == nil {
					return
				}
				if !errors.Is(err, eventstore.ErrConcurrency) || attempt > 500 {
					t.Errorf("appender %d, attempt %d: %v", i, attempt, err)
					return
				}
				conflicts.Add(1)
			}
		}()
	}
	wg.Wait()
	got := collect(t, s.ReadStream(ctx, stream, 0))
	if len(got) != n {
		t.Fatalf("stream holds %d events, want %d", len(got), n)
	}
	seen := map[string]bool{}
	for i, e := range got {
		if e.StreamVersion != uint64(i+1) {
			t.Errorf("event %d has version %d: versions are not dense", i, e.StreamVersion)
		}
		if seen[string(e.Data)] {
			t.Errorf("body %s stored twice", e.Data)
		}
		seen[string(e.Data)] = true
	}
	t.Logf("%d appenders, %d conflicts retried", n, conflicts.Load())
}

func testUniqueKeyRace(t *testing.T, b Backend) {
	s, _ := newStore(t, b, Hooks{})
	ctx := testCtx(t)
	key := "email:" + uuid.NewString() + "@example.com"
	const n = 50
	var wins atomic.Int32
	var winner atomic.Value
	var wg sync.WaitGroup
	start := make(chan struct{})
	streams := make([]string, n)
	for i := range n {
		streams[i] = streamName("user")
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, err := s.Append(ctx, eventstore.Append{Stream: streams[i], Expected: eventstore.NoStream,
				Events: []eventstore.NewEvent{ev("UserRegistered", i)}, Claim: []string{key}})
			var taken *eventstore.KeyTakenError
			switch {
			case err == nil:
				wins.Add(1)
				winner.Store(streams[i])
			case errors.As(err, &taken) && errors.Is(err, eventstore.ErrKeyTaken):
				if taken.Key != key {
					t.Errorf("KeyTakenError names %q, want %q", taken.Key, key)
				}
			default:
				t.Errorf("claimer %d: %v", i, err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d claims of one key won, want exactly 1", wins.Load())
	}
	all := collect(t, s.ReadAll(ctx, 0, eventstore.Filter{}))
	if len(all) != 1 || all[0].StreamID != winner.Load().(string) {
		t.Errorf("log holds %d events, want only the winner's", len(all))
	}
}

func testUniqueKeyRelease(t *testing.T, b Backend) {
	s, _ := newStore(t, b, Hooks{})
	ctx := testCtx(t)
	key := "username:" + uuid.NewString()[:8]
	alice, bob, carol := streamName("user"), streamName("user"), streamName("user")
	mustAppend(t, s, eventstore.Append{Stream: alice, Expected: eventstore.NoStream, Events: []eventstore.NewEvent{ev("Registered", 1)}, Claim: []string{key}})
	// Releasing a key one does not hold changes nothing.
	mustAppend(t, s, eventstore.Append{Stream: carol, Expected: eventstore.NoStream, Events: []eventstore.NewEvent{ev("Registered", 3)}, Release: []string{key}})
	if _, err := s.Append(ctx, eventstore.Append{Stream: bob, Expected: eventstore.NoStream, Events: []eventstore.NewEvent{ev("Registered", 2)}, Claim: []string{key}}); !errors.Is(err, eventstore.ErrKeyTaken) {
		t.Fatalf("claim of a held key: err = %v, want ErrKeyTaken", err)
	}
	// Releasing and claiming again in one append keeps the key.
	mustAppend(t, s, eventstore.Append{Stream: alice, Expected: eventstore.Exactly(1), Events: []eventstore.NewEvent{ev("Renamed", 1)}, Release: []string{key}, Claim: []string{key}})
	if _, err := s.Append(ctx, eventstore.Append{Stream: bob, Expected: eventstore.NoStream, Events: []eventstore.NewEvent{ev("Registered", 2)}, Claim: []string{key}}); !errors.Is(err, eventstore.ErrKeyTaken) {
		t.Fatalf("claim after release-and-reclaim: err = %v, want ErrKeyTaken", err)
	}
	mustAppend(t, s, eventstore.Append{Stream: alice, Expected: eventstore.Exactly(2), Events: []eventstore.NewEvent{ev("Renamed", 2)}, Release: []string{key}})
	mustAppend(t, s, eventstore.Append{Stream: bob, Expected: eventstore.NoStream, Events: []eventstore.NewEvent{ev("Registered", 2)}, Claim: []string{key}})
	if _, err := s.Append(ctx, eventstore.Append{Stream: alice, Expected: eventstore.Exactly(3), Events: []eventstore.NewEvent{ev("Renamed", 3)}, Claim: []string{key}}); !errors.Is(err, eventstore.ErrKeyTaken) {
		t.Fatalf("the old owner claims the key back from its new owner: err = %v, want ErrKeyTaken", err)
	}
}

func testUniqueKeyAtomicWithEvents(t *testing.T, b Backend) {
	s, _ := newStore(t, b, Hooks{})
	ctx := testCtx(t)
	taken := "email:" + uuid.NewString()
	free := "username:" + uuid.NewString()
	mustAppend(t, s, eventstore.Append{Stream: streamName("user"), Expected: eventstore.NoStream, Events: []eventstore.NewEvent{ev("Registered", 1)}, Claim: []string{taken}})
	loser := streamName("user")
	_, err := s.Append(ctx, eventstore.Append{Stream: loser, Expected: eventstore.NoStream, Events: []eventstore.NewEvent{ev("Registered", 2)}, Claim: []string{free, taken}})
	if !errors.Is(err, eventstore.ErrKeyTaken) {
		t.Fatalf("err = %v, want ErrKeyTaken", err)
	}
	if v := streamVersion(t, s, loser); v != 0 {
		t.Errorf("the failed append stored events: stream at version %d", v)
	}
	// The free key of the failed append was not kept either.
	mustAppend(t, s, eventstore.Append{Stream: streamName("user"), Expected: eventstore.NoStream, Events: []eventstore.NewEvent{ev("Registered", 3)}, Claim: []string{free}})
	// A wrong expected version keeps no claim.
	k := "email:" + uuid.NewString()
	existing := streamName("user")
	mustAppend(t, s, eventstore.Append{Stream: existing, Expected: eventstore.NoStream, Events: []eventstore.NewEvent{ev("Registered", 4)}})
	if _, err := s.Append(ctx, eventstore.Append{Stream: existing, Expected: eventstore.NoStream, Events: []eventstore.NewEvent{ev("Registered", 5)}, Claim: []string{k}}); !errors.Is(err, eventstore.ErrConcurrency) {
		t.Fatalf("err = %v, want ErrConcurrency", err)
	}
	mustAppend(t, s, eventstore.Append{Stream: streamName("user"), Expected: eventstore.NoStream, Events: []eventstore.NewEvent{ev("Registered", 6)}, Claim: []string{k}})
}

// testLateCommitsNeverSkipped races appenders, some of which hold their transaction open for a
// random delay after taking their position, against live subscribers: each subscriber must see
// every event exactly once, in strictly increasing positions.
func testLateCommitsNeverSkipped(t *testing.T, b Backend) {
	var held atomic.Int32
	hooks := Hooks{BeforeCommit: func(ctx context.Context, a eventstore.Append) {
		if strings.HasPrefix(a.Stream, "slow-") {
			held.Add(1)
			time.Sleep(time.Duration(rand.IntN(40)) * time.Millisecond)
		}
	}}
	s, _ := newStore(t, b, hooks)
	const writers, perWriter = 8, 30
	total := writers * perWriter

	type result struct {
		events []eventstore.Event
		err    error
	}
	subscribe := func(after uint64) chan result {
		out := make(chan result, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			var r result
			for e, err := range s.Subscribe(ctx, after, eventstore.Filter{}) {
				if err != nil {
					r.err = err
					break
				}
				r.events = append(r.events, e)
				if len(r.events) == total {
					break
				}
			}
			out <- r
		}()
		return out
	}
	early := subscribe(0)

	var wg sync.WaitGroup
	var appended atomic.Int32
	var mid chan result
	var midOnce sync.Once
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			prefix := "fast-"
			if w%2 == 0 {
				prefix = "slow-"
			}
			for i := range perWriter {
				stream := fmt.Sprintf("%s%d-%d", prefix, w, i%3)
				if _, err := s.Append(testCtx(t), eventstore.Append{Stream: stream, Expected: eventstore.Any, Events: []eventstore.NewEvent{ev("Raced", map[string]int{"w": w, "i": i})}}); err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
				if appended.Add(1) == int32(total/2) {
					midOnce.Do(func() { mid = subscribe(0) })
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if b.Features.BeforeCommitHook && held.Load() == 0 {
		t.Fatal("the backend declares BeforeCommitHook but never called it")
	}
	for name, ch := range map[string]chan result{"early subscriber": early, "mid-run subscriber": mid} {
		r := <-ch
		if r.err != nil {
			t.Fatalf("%s: after %d events: %v", name, len(r.events), r.err)
		}
		checkExactlyOnceInOrder(t, name, r.events, total)
	}
	checkExactlyOnceInOrder(t, "ReadAll", collect(t, s.ReadAll(testCtx(t), 0, eventstore.Filter{})), total)
}

func checkExactlyOnceInOrder(t *testing.T, name string, events []eventstore.Event, want int) {
	t.Helper()
	if len(events) != want {
		t.Errorf("%s: %d events, want %d", name, len(events), want)
	}
	seen := map[uuid.UUID]bool{}
	for i, e := range events {
		if seen[e.ID] {
			t.Errorf("%s: event %s delivered twice", name, e.ID)
		}
		seen[e.ID] = true
		if i > 0 && e.GlobalPosition <= events[i-1].GlobalPosition {
			t.Errorf("%s: position %d after %d: not strictly increasing", name, e.GlobalPosition, events[i-1].GlobalPosition)
		}
	}
}

func testSubscribeFromMiddle(t *testing.T, b Backend) {
	s, _ := newStore(t, b, Hooks{})
	stream := streamName("mid")
	for i := range 10 {
		mustAppend(t, s, eventstore.Append{Stream: stream, Expected: eventstore.Any, Events: []eventstore.NewEvent{ev("Numbered", i)}})
	}
	all := collect(t, s.ReadAll(testCtx(t), 0, eventstore.Filter{}))
	if len(all) != 10 {
		t.Fatalf("log holds %d events, want 10", len(all))
	}
	from := all[4].GlobalPosition
	if got := collect(t, s.ReadAll(testCtx(t), from, eventstore.Filter{})); len(got) != 5 || got[0].ID != all[5].ID {
		t.Fatalf("ReadAll after position %d: %d events, want the last 5", from, len(got))
	}
	// Subscribe after the 5th event: the 5 older ones that follow, then 3 appended live.
	done := make(chan []eventstore.Event, 1)
	go func() { done <- take(t, s, from, eventstore.Filter{}, 8) }()
	for i := 10; i < 13; i++ {
		time.Sleep(5 * time.Millisecond)
		mustAppend(t, s, eventstore.Append{Stream: stream, Expected: eventstore.Any, Events: []eventstore.NewEvent{ev("Numbered", i)}})
	}
	got := <-done
	for i, e := range got {
		if want := fmt.Sprint(i + 5); string(e.Data) != want {
			t.Errorf("event %d after the middle has body %s, want %s", i, e.Data, want)
		}
	}
}

func testFilters(t *testing.T, b Backend) {
	s, _ := newStore(t, b, Hooks{})
	ctx := testCtx(t)
	appendTo := func(stream, typ string) {
		mustAppend(t, s, eventstore.Append{Stream: stream, Expected: eventstore.Any, Events: []eventstore.NewEvent{ev(typ, stream)}})
	}
	appendTo("user-1", "UserRegistered")
	appendTo("user-1", "OTPEnabled")
	appendTo("user-2", "UserRegistered")
	appendTo("wallet-1", "WalletCredited")
	appendTo("user_x", "UserRegistered") // "_" and "%" are no wildcards in a prefix
	appendTo("us%r-3", "LabelAdded")
	appendTo("user-2", "LabelAdded")

	cases := []struct {
		f    eventstore.Filter
		want []string // "stream/type"
	}{
		{eventstore.Filter{Types: []string{"UserRegistered"}}, []string{"user-1/UserRegistered", "user-2/UserRegistered", "user_x/UserRegistered"}},
		{eventstore.Filter{Types: []string{"OTPEnabled", "WalletCredited"}}, []string{"user-1/OTPEnabled", "wallet-1/WalletCredited"}},
		{eventstore.Filter{StreamPrefix: "user-"}, []string{"user-1/UserRegistered", "user-1/OTPEnabled", "user-2/UserRegistered", "user-2/LabelAdded"}},
		{eventstore.Filter{StreamPrefix: "us%"}, []string{"us%r-3/LabelAdded"}},
		{eventstore.Filter{StreamPrefix: "user_"}, []string{"user_x/UserRegistered"}},
		{eventstore.Filter{StreamPrefix: "user-", Types: []string{"LabelAdded"}}, []string{"user-2/LabelAdded"}},
		{eventstore.Filter{Types: []string{"Nothing"}}, nil},
	}
	for _, c := range cases {
		var fromRead, fromSub []string
		for _, e := range collect(t, s.ReadAll(ctx, 0, c.f)) {
			fromRead = append(fromRead, e.StreamID+"/"+e.Type)
		}
		for _, e := range take(t, s, 0, c.f, len(c.want)) {
			fromSub = append(fromSub, e.StreamID+"/"+e.Type)
		}
		if fmt.Sprint(fromRead) != fmt.Sprint(c.want) || fmt.Sprint(fromSub) != fmt.Sprint(c.want) {
			t.Errorf("filter %+v: ReadAll %v, Subscribe %v, want %v", c.f, fromRead, fromSub, c.want)
		}
	}
	// A filtered subscription skips the rest and delivers the next matching live event.
	done := make(chan []eventstore.Event, 1)
	go func() { done <- take(t, s, 0, eventstore.Filter{Types: []string{"OTPDisabled"}}, 1) }()
	appendTo("user-1", "LabelRemoved")
	appendTo("user-1", "OTPDisabled")
	if got := <-done; len(got) != 1 || got[0].Type != "OTPDisabled" {
		t.Errorf("live filtered subscription got %v", got)
	}
}

func testReadStreamAfterVersion(t *testing.T, b Backend) {
	s, _ := newStore(t, b, Hooks{})
	ctx := testCtx(t)
	stream := streamName("rs")
	for i := range 5 {
		mustAppend(t, s, eventstore.Append{Stream: stream, Expected: eventstore.Exactly(uint64(i)), Events: []eventstore.NewEvent{ev("N", i)}})
	}
	mustAppend(t, s, eventstore.Append{Stream: stream + "x", Expected: eventstore.NoStream, Events: []eventstore.NewEvent{ev("Other", 0)}})
	got := collect(t, s.ReadStream(ctx, stream, 3))
	if len(got) != 2 || got[0].StreamVersion != 4 || got[1].StreamVersion != 5 {
		t.Errorf("ReadStream after 3 = %d events, want versions 4 and 5", len(got))
	}
	if got := collect(t, s.ReadStream(ctx, "missing-"+stream, 0)); len(got) != 0 {
		t.Errorf("a missing stream yields %d events", len(got))
	}
}

func testLargeEvent(t *testing.T, b Backend) {
	s, _ := newStore(t, b, Hooks{})
	big := strings.Repeat("0123456789abcdef", 1<<20/16)
	data, _ := json.Marshal(map[string]string{"blob": big})
	stream := streamName("big")
	mustAppend(t, s, eventstore.Append{Stream: stream, Expected: eventstore.NoStream, Events: []eventstore.NewEvent{{Type: "Big", SchemaVersion: 1, Data: data}}})
	got := collect(t, s.ReadStream(testCtx(t), stream, 0))
	if len(got) != 1 || !bytes.Equal(got[0].Data, data) {
		t.Fatalf("the 1 MiB event did not come back intact")
	}
	if sub := take(t, s, 0, eventstore.Filter{}, 1); !bytes.Equal(sub[0].Data, data) {
		t.Fatalf("the 1 MiB event did not come back intact through Subscribe")
	}
}

func testCancellation(t *testing.T, b Backend) {
	s, _ := newStore(t, b, Hooks{})
	mustAppend(t, s, eventstore.Append{Stream: streamName("c"), Expected: eventstore.Any, Events: []eventstore.NewEvent{ev("One", 1)}})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		n := 0
		for _, err := range s.Subscribe(ctx, 0, eventstore.Filter{}) {
			if err != nil {
				errc <- err
				return
			}
			n++
			if n == 1 {
				cancel() // cancel while the subscription waits for more
			}
		}
		errc <- errors.New("subscription ended without an error")
	}()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled subscription ended with %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a cancelled subscription did not end within 10s")
	}
	// A read with an already-cancelled context fails rather than returning a partial log.
	for _, err := range s.ReadAll(ctx, 0, eventstore.Filter{}) {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("ReadAll with a cancelled context yielded err %v, want context.Canceled", err)
		}
		break
	}
	if _, err := s.Append(ctx, eventstore.Append{Stream: streamName("c"), Expected: eventstore.Any, Events: []eventstore.NewEvent{ev("Two", 2)}}); err == nil {
		t.Error("Append with a cancelled context succeeded")
	}
	// Stopping a subscription early (break) leaves the store usable.
	for range s.Subscribe(testCtx(t), 0, eventstore.Filter{}) {
		break
	}
	mustAppend(t, s, eventstore.Append{Stream: streamName("c"), Expected: eventstore.Any, Events: []eventstore.NewEvent{ev("Three", 3)}})
}

func testSurvivesReopen(t *testing.T, b Backend) {
	s, reopen := b.New(t, Hooks{})
	stream := streamName("durable")
	key := "email:" + uuid.NewString()
	var before []eventstore.Event
	for i := range 5 {
		mustAppend(t, s, eventstore.Append{Stream: stream, Expected: eventstore.Any, Events: []eventstore.NewEvent{ev("Kept", i)}, Claim: claimIf(i == 0, key)})
	}
	before = collect(t, s.ReadAll(testCtx(t), 0, eventstore.Filter{}))
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	s2 := reopen(t)
	t.Cleanup(func() { s2.Close() })
	after := collect(t, s2.ReadAll(testCtx(t), 0, eventstore.Filter{}))
	if len(after) != len(before) {
		t.Fatalf("after reopen: %d events, want %d", len(after), len(before))
	}
	for i := range after {
		a, b := after[i], before[i]
		if a.ID != b.ID || a.GlobalPosition != b.GlobalPosition || a.StreamVersion != b.StreamVersion || !bytes.Equal(a.Data, b.Data) || !a.RecordedAt.Equal(b.RecordedAt) {
			t.Errorf("event %d changed across reopen: %+v vs %+v", i, a, b)
		}
	}
	if _, err := s2.Append(testCtx(t), eventstore.Append{Stream: streamName("x"), Expected: eventstore.NoStream, Events: []eventstore.NewEvent{ev("Other", 0)}, Claim: []string{key}}); !errors.Is(err, eventstore.ErrKeyTaken) {
		t.Errorf("a claim survived no reopen: err = %v, want ErrKeyTaken", err)
	}
	r := mustAppend(t, s2, eventstore.Append{Stream: stream, Expected: eventstore.Exactly(5), Events: []eventstore.NewEvent{ev("Kept", 5)}})
	if r.FirstPosition <= before[len(before)-1].GlobalPosition {
		t.Errorf("position %d after reopen is not above %d", r.FirstPosition, before[len(before)-1].GlobalPosition)
	}
}

func claimIf(ok bool, key string) []string {
	if ok {
		return []string{key}
	}
	return nil
}

func testClosed(t *testing.T, b Backend) {
	s, _ := newStore(t, b, Hooks{})
	mustAppend(t, s, eventstore.Append{Stream: streamName("c"), Expected: eventstore.Any, Events: []eventstore.NewEvent{ev("One", 1)}})
	errc := make(chan error, 1)
	started := make(chan struct{})
	go func() {
		for _, err := range s.Subscribe(context.Background(), 0, eventstore.Filter{}) {
			if err != nil {
				errc <- err
				return
			}
			close(started)
		}
		errc <- errors.New("subscription ended without an error")
	}()
	<-started
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, eventstore.ErrClosed) {
			t.Errorf("subscription on a closed store ended with %v, want ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("closing the store did not end its subscription within 10s")
	}
	if _, err := s.Append(testCtx(t), eventstore.Append{Stream: "c-2", Expected: eventstore.Any, Events: []eventstore.NewEvent{ev("Two", 2)}}); !errors.Is(err, eventstore.ErrClosed) {
		t.Errorf("Append after Close: %v, want ErrClosed", err)
	}
	for _, err := range s.ReadAll(testCtx(t), 0, eventstore.Filter{}) {
		if !errors.Is(err, eventstore.ErrClosed) {
			t.Errorf("ReadAll after Close yielded %v, want ErrClosed", err)
		}
		break
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func testCheckpoints(t *testing.T, b Backend) {
	if !b.Features.Checkpoints {
		t.Skip("backend does not declare Checkpoints")
	}
	s, reopen := b.New(t, Hooks{})
	cp, ok := s.(eventstore.Checkpoints)
	if !ok {
		t.Fatal("backend declares Checkpoints but its store does not implement eventstore.Checkpoints")
	}
	ctx := testCtx(t)
	if p, err := cp.Checkpoint(ctx, "relay"); err != nil || p != 0 {
		t.Fatalf("unset checkpoint = %d, %v; want 0, nil", p, err)
	}
	for _, p := range []uint64{7, 1 << 50, 3} {
		if err := cp.SetCheckpoint(ctx, "relay", p); err != nil {
			t.Fatal(err)
		}
		if got, err := cp.Checkpoint(ctx, "relay"); err != nil || got != p {
			t.Fatalf("checkpoint = %d, %v; want %d", got, err, p)
		}
	}
	if err := cp.SetCheckpoint(ctx, "other", 11); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s2 := reopen(t)
	t.Cleanup(func() { s2.Close() })
	cp2 := s2.(eventstore.Checkpoints)
	if got, _ := cp2.Checkpoint(ctx, "relay"); got != 3 {
		t.Errorf("after reopen checkpoint relay = %d, want 3", got)
	}
	if got, _ := cp2.Checkpoint(ctx, "other"); got != 11 {
		t.Errorf("after reopen checkpoint other = %d, want 11", got)
	}
}

func testKeyOwners(t *testing.T, b Backend) {
	if !b.Features.KeyOwners {
		t.Skip("backend does not declare KeyOwners")
	}
	s, _ := newStore(t, b, Hooks{})
	ko, ok := s.(eventstore.KeyOwners)
	if !ok {
		t.Fatal("backend declares KeyOwners but its store does not implement eventstore.KeyOwners")
	}
	ctx := testCtx(t)
	key := "email:" + uuid.NewString()
	if _, err := ko.KeyOwner(ctx, key); !errors.Is(err, eventstore.ErrKeyNotClaimed) {
		t.Fatalf("owner of an unclaimed key: err = %v, want ErrKeyNotClaimed", err)
	}
	alice := streamName("user")
	mustAppend(t, s, eventstore.Append{Stream: alice, Expected: eventstore.NoStream, Events: []eventstore.NewEvent{ev("Registered", 1)}, Claim: []string{key}})
	if got, err := ko.KeyOwner(ctx, key); err != nil || got != alice {
		t.Fatalf("owner = %q, %v; want %q", got, err, alice)
	}
	mustAppend(t, s, eventstore.Append{Stream: alice, Expected: eventstore.Exactly(1), Events: []eventstore.NewEvent{ev("Closed", 1)}, Release: []string{key}})
	if _, err := ko.KeyOwner(ctx, key); !errors.Is(err, eventstore.ErrKeyNotClaimed) {
		t.Fatalf("owner of a released key: err = %v, want ErrKeyNotClaimed", err)
	}
}
