package eventstoretest

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"

	"github.com/idlog/idlog/eventstore"
)

// testDataKeys checks Append.DataKey: the key is stored with the append or not at all, a user
// gets one key, and a store that cannot keep keys refuses them.
func testDataKeys(t *testing.T, b Backend) {
	s, _ := newStore(t, b, Hooks{})
	ctx := testCtx(t)
	uid := uuid.NewString()
	key := func() *eventstore.DataKey {
		return &eventstore.DataKey{UID: uid, Wrapped: []byte(uuid.NewString())}
	}
	stream := eventstore.DataKeyStream(uid)
	if k, ok := s.(eventstore.DataKeyKeeper); !ok || !k.KeepsDataKeys() {
		_, err := s.Append(ctx, eventstore.Append{Stream: stream, Expected: eventstore.NoStream,
			Events: []eventstore.NewEvent{ev("UserRegistered", 1)}, DataKey: key()})
		if !errors.Is(err, eventstore.ErrInvalidAppend) {
			t.Errorf("append with a data key to a store that keeps none: err = %v, want ErrInvalidAppend", err)
		}
		if got := collect(t, s.ReadAll(ctx, 0, eventstore.Filter{})); len(got) != 0 {
			t.Errorf("log holds %d events, want none", len(got))
		}
		return
	}

	// A failed append stores no key: the user's next first append can store one.
	taken := "email:" + uuid.NewString() + "@example.com"
	mustAppend(t, s, eventstore.Append{Stream: streamName("other"), Expected: eventstore.NoStream,
		Events: []eventstore.NewEvent{ev("UserRegistered", 0)}, Claim: []string{taken}})
	if _, err := s.Append(ctx, eventstore.Append{Stream: stream, Expected: eventstore.NoStream,
		Events: []eventstore.NewEvent{ev("UserRegistered", 1)}, Claim: []string{taken}, DataKey: key()}); !errors.Is(err, eventstore.ErrKeyTaken) {
		t.Fatalf("append claiming a taken key: err = %v, want ErrKeyTaken", err)
	}
	if _, err := s.Append(ctx, eventstore.Append{Stream: stream, Expected: eventstore.Exactly(3),
		Events: []eventstore.NewEvent{ev("UserRegistered", 1)}, DataKey: key()}); !errors.Is(err, eventstore.ErrConcurrency) {
		t.Fatalf("append at a wrong version: err = %v, want ErrConcurrency", err)
	}
	first := ev("UserRegistered", 1)
	first.ID, _ = uuid.NewV7()
	a := eventstore.Append{Stream: stream, Expected: eventstore.NoStream, Events: []eventstore.NewEvent{first}, DataKey: key()}
	orig := mustAppend(t, s, a)

	// A second key for the user fails, even on a faithful retry of the stored append (its events
	// were sealed with the stored key), and stores nothing.
	a.DataKey = key()
	if _, err := s.Append(ctx, a); !errors.Is(err, eventstore.ErrDataKeyExists) {
		t.Errorf("retry with another data key: err = %v, want ErrDataKeyExists", err)
	}
	a.DataKey = nil
	if again, err := s.Append(ctx, a); err != nil || again.LastPosition != orig.LastPosition {
		t.Errorf("retry without a data key = %+v, %v, want the original %+v", again, err, orig)
	}
	if _, err := s.Append(ctx, eventstore.Append{Stream: stream, Expected: eventstore.Any,
		Events: []eventstore.NewEvent{ev("UserDataUpdated", 2)}, DataKey: key()}); !errors.Is(err, eventstore.ErrDataKeyExists) {
		t.Errorf("second data key of a user: err = %v, want ErrDataKeyExists", err)
	}
	// A key belongs to its user's stream: a store may keep it in the stream's row.
	if _, err := s.Append(ctx, eventstore.Append{Stream: streamName("user"), Expected: eventstore.Any,
		Events: []eventstore.NewEvent{ev("UserDataUpdated", 3)}, DataKey: key()}); !errors.Is(err, eventstore.ErrInvalidAppend) {
		t.Errorf("data key appended to another user's stream: err = %v, want ErrInvalidAppend", err)
	}
	if got := collect(t, s.ReadAll(ctx, 0, eventstore.Filter{})); len(got) != 2 {
		t.Errorf("log holds %d events, want 2", len(got))
	}

	// Concurrent first appends for one user: one key.
	uid = uuid.NewString()
	const n = 8
	var wins atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, err := s.Append(ctx, eventstore.Append{Stream: eventstore.DataKeyStream(uid), Expected: eventstore.Any,
				Events: []eventstore.NewEvent{ev("UserRegistered", i)}, DataKey: key()})
			switch {
			case err == nil:
				wins.Add(1)
			case !errors.Is(err, eventstore.ErrDataKeyExists):
				t.Errorf("racer %d: %v", i, err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if wins.Load() != 1 {
		t.Errorf("%d appends stored a key of one user, want exactly 1", wins.Load())
	}
	if got := collect(t, s.ReadAll(ctx, 0, eventstore.Filter{})); len(got) != 3 {
		t.Errorf("log holds %d events, want 3", len(got))
	}
}
