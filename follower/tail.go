package follower

import (
	"context"
	"iter"
	"reflect"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/idlog/idlog/eventstore"
)

// The live followers of one store share one read of its log: a tail. Without it, every appended
// event woke each follower (a dozen projectors, the relay) and each read the log on its own, so a
// sign-in on PostgreSQL cost some twenty reads of the events table. The tail reads the log once,
// from where its first subscriber stands, and keeps the last 4,096 events it read in memory;
// a follower whose position lies in that window reads from memory, one that is behind it (catching
// up after a restart, or slower than the log grows) reads the store itself until it is back inside
// the window. What a follower receives is what the store's Subscribe would have given it: the
// window holds every event between its ends, in order, because the tail's own read does.

// tailSize is how many of the newest events a tail keeps in memory (at most twice as many).
var tailSize = func() *atomic.Int64 {
	var n atomic.Int64
	n.Store(defaultTailSize)
	return &n
}()

const defaultTailSize = 4096

// tailChunk is how many events a subscriber copies out of the window at a time.
const tailChunk = 256

var (
	tailsMu sync.Mutex
	tails   = map[eventstore.Store]*tail{}
)

// Subscribe is the live read of s after position after, as s.Subscribe gives it: through the
// store's shared tail when the read is unfiltered, so that every live read of one store in this
// process costs one read of its log. Followers read this way; so does a store that wraps another
// (personaldata.Store), so that its followers and those of the store underneath share a read.
func Subscribe(ctx context.Context, s eventstore.Store, after uint64, f eventstore.Filter) iter.Seq2[eventstore.Event, error] {
	if len(f.Types) > 0 || f.StreamPrefix != "" || !reflect.TypeOf(s).Comparable() {
		return s.Subscribe(ctx, after, f)
	}
	return func(yield func(eventstore.Event, error) bool) {
		t := joinTail(s)
		defer t.leave()
		t.serve(ctx, after, yield)
	}
}

// tail is the shared read of one store's log.
type tail struct {
	src eventstore.Store

	mu     sync.Mutex
	subs   int
	run    int                // counts the reads; a read that ended stops touching the window
	cancel context.CancelFunc // ends the current read; nil when none runs
	events []eventstore.Event // every event after low up to head, in order
	low    uint64
	head   uint64
	err    error         // why the current read ended; its subscribers end with it
	wake   chan struct{} // closed when the window grows or the read ends
	lead   uint64        // the newest position a subscriber took out of the window
	taken  chan struct{} // closed when lead moves, while the read waits for it
}

func joinTail(s eventstore.Store) *tail {
	tailsMu.Lock()
	defer tailsMu.Unlock()
	t := tails[s]
	if t == nil {
		t = &tail{src: s}
		tails[s] = t
	}
	t.mu.Lock()
	t.subs++
	t.mu.Unlock()
	return t
}

// leave ends a subscription; the last one stops the read and forgets the window.
func (t *tail) leave() {
	tailsMu.Lock()
	defer tailsMu.Unlock()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.subs--
	if t.subs > 0 {
		return
	}
	t.stopLocked()
	delete(tails, t.src)
}

func (t *tail) stopLocked() {
	if t.cancel != nil {
		t.cancel()
		t.cancel = nil
	}
	t.run++
	t.events, t.err = nil, nil
	t.notifyLocked()
}

// startLocked starts a read of the log after from, unless one runs.
func (t *tail) startLocked(from uint64) {
	if t.cancel != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.cancel = cancel
	t.run++
	t.low, t.head, t.lead, t.events, t.err = from, from, from, nil, nil
	go t.read(ctx, t.run, from)
}

// read fills the window until its context ends or the read fails. It keeps at most tailSize
// events ahead of the leading subscriber: further would only read events that leave the window
// before anyone takes them, so that a subscriber catching up (a relay from a cold start) fell
// behind the window and read the store a second time beside it.
func (t *tail) read(ctx context.Context, run int, from uint64) {
	for e, err := range t.src.Subscribe(ctx, from, eventstore.Filter{}) {
		t.mu.Lock()
		if t.run != run {
			t.mu.Unlock()
			return
		}
		if err != nil {
			// Every subscriber of this read ends with its error (the store closed, the database
			// is down): each follower then fails, pauses and resumes as it would on its own read.
			t.err = err
			t.cancel()
			t.cancel = nil
			t.notifyLocked()
			t.mu.Unlock()
			return
		}
		t.events = append(t.events, e)
		t.head = e.GlobalPosition
		if keep := int(tailSize.Load()); len(t.events) >= 2*keep {
			drop := len(t.events) - keep
			t.low = t.events[drop-1].GlobalPosition
			// In place: subscribers copy events out under the lock, and the window keeps
			// its memory instead of allocating it anew every keep events.
			n := copy(t.events, t.events[drop:])
			clear(t.events[n:])
			t.events = t.events[:n]
		}
		t.notifyLocked()
		for t.run == run && t.aheadLocked() >= int(tailSize.Load()) {
			if t.taken == nil {
				t.taken = make(chan struct{})
			}
			taken := t.taken
			t.mu.Unlock()
			select {
			case <-taken:
			case <-ctx.Done():
				return
			}
			t.mu.Lock()
		}
		t.mu.Unlock()
	}
}

// aheadLocked is how many events of the window no subscriber has taken yet.
func (t *tail) aheadLocked() int {
	return len(t.events) - sort.Search(len(t.events), func(i int) bool { return t.events[i].GlobalPosition > t.lead })
}

func (t *tail) notifyLocked() {
	if t.wake != nil {
		close(t.wake)
		t.wake = nil
	}
}

// serve yields the events after `after` until yield says stop, ctx ends or a read fails.
func (t *tail) serve(ctx context.Context, after uint64, yield func(eventstore.Event, error) bool) {
	pos := after
	chunk := make([]eventstore.Event, 0, tailChunk)
	run := 0 // the read this subscription takes its events from
	for {
		t.mu.Lock()
		if t.cancel == nil {
			if t.err != nil && t.run == run {
				err := t.err
				t.mu.Unlock()
				yield(eventstore.Event{}, err)
				return
			}
			t.startLocked(pos)
		}
		run = t.run
		if pos < t.low {
			t.mu.Unlock()
			// Behind the window: read the store until inside it again.
			var ok bool
			if pos, ok = t.direct(ctx, pos, yield); !ok {
				return
			}
			continue
		}
		i := sort.Search(len(t.events), func(i int) bool { return t.events[i].GlobalPosition > pos })
		chunk = append(chunk[:0], t.events[i:min(i+tailChunk, len(t.events))]...)
		if n := len(chunk); n > 0 && chunk[n-1].GlobalPosition > t.lead {
			t.lead = chunk[n-1].GlobalPosition
			if t.taken != nil {
				close(t.taken) // the read may go on
				t.taken = nil
			}
		}
		var wake chan struct{}
		if len(chunk) == 0 {
			if t.wake == nil {
				t.wake = make(chan struct{})
			}
			wake = t.wake
		}
		t.mu.Unlock()
		for _, e := range chunk {
			if !yield(e, nil) {
				return
			}
			pos = e.GlobalPosition
		}
		if wake == nil {
			continue
		}
		select {
		case <-wake:
		case <-ctx.Done():
			yield(eventstore.Event{}, ctx.Err())
			return
		}
	}
}

// direct reads the store after pos until the events it yields reach the window, and returns the
// last position yielded; ok false when the subscription ended (yield said stop, or the read
// failed and said so).
func (t *tail) direct(ctx context.Context, pos uint64, yield func(eventstore.Event, error) bool) (uint64, bool) {
	dctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for e, err := range t.src.Subscribe(dctx, pos, eventstore.Filter{}) {
		if err != nil {
			yield(eventstore.Event{}, err)
			return pos, false
		}
		if !yield(e, nil) {
			return pos, false
		}
		pos = e.GlobalPosition
		t.mu.Lock()
		inside := t.cancel != nil && t.low <= pos && pos <= t.head
		t.mu.Unlock()
		if inside {
			return pos, true
		}
	}
	return pos, false
}
