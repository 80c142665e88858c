package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/eventstore/eventstoretest"
	"github.com/idlog/idlog/eventstore/sqlite"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	eventstoretest.Run(t, eventstoretest.Backend{
		Features: eventstoretest.Features{BeforeCommitHook: true, Checkpoints: true, KeyOwners: true, GlobalEventIDs: true},
		New: func(t *testing.T, h eventstoretest.Hooks) (eventstore.Store, func(t *testing.T) eventstore.Store) {
			path := filepath.Join(t.TempDir(), "events.db")
			o := sqlite.Options{Path: path, BeforeCommit: h.BeforeCommit}
			reopen := func(t *testing.T) eventstore.Store { return open(t, o) }
			return open(t, o), reopen
		},
	})
}

func open(t *testing.T, o sqlite.Options) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), o)
	if err != nil {
		t.Fatalf("open %q: %v", o.Path, err)
	}
	return s
}

func openTemp(t *testing.T) *sqlite.Store {
	t.Helper()
	s := open(t, sqlite.Options{Path: filepath.Join(t.TempDir(), "events.db")})
	t.Cleanup(func() { s.Close() })
	return s
}

func event(typ string, n int) eventstore.NewEvent {
	return eventstore.NewEvent{Type: typ, SchemaVersion: 1, Data: []byte(fmt.Sprintf(`{"n":%d}`, n))}
}

func TestOpenRejectsBadOptions(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cases := []struct {
		o    sqlite.Options
		name string // what the error must name
	}{
		{sqlite.Options{}, "Path"},
		{sqlite.Options{Path: ":memory:"}, ":memory:"},
		{sqlite.Options{Path: "file:x.db?mode=memory"}, "file:x.db?mode=memory"},
		{sqlite.Options{Path: filepath.Join(dir, "a.db"), PollInterval: -time.Second}, "-1s"},
	}
	for _, c := range cases {
		s, err := sqlite.Open(context.Background(), c.o)
		if err == nil {
			s.Close()
			t.Errorf("Open(%+v) succeeded", c.o)
			continue
		}
		if !errors.Is(err, sqlite.ErrInvalidOptions) || !strings.Contains(err.Error(), c.name) {
			t.Errorf("Open(%+v) = %v, want ErrInvalidOptions naming %q", c.o, err, c.name)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "a.db")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a rejected Open created its file (stat: %v)", err)
	}
}

// A path with characters that mean something in a URI is a plain path, not parameters.
func TestOpenCreatesDirectoryAndKeepsPathLiteral(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "new dir", "a?mode=memory#x%20y", "events.db")
	s := open(t, sqlite.Options{Path: path})
	defer s.Close()
	if _, err := s.Append(context.Background(), eventstore.Append{Stream: "s-1", Expected: eventstore.NoStream, Events: []eventstore.NewEvent{event("T", 1)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the database is not at the literal path: %v", err)
	}
}

func TestReadPoolIsWALAndReadOnly(t *testing.T) {
	t.Parallel()
	s := openTemp(t)
	var mode string
	if err := s.DB().Get(&mode, "PRAGMA journal_mode"); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v; want wal", mode, err)
	}
	if _, err := s.DB().Exec("INSERT INTO checkpoints (name, position, updated_at) VALUES ('x', 1, 1)"); err == nil {
		t.Error("a write through DB() succeeded; it would race the writer")
	}
}

// TestConcurrentWritersNeverLocked hammers the store with writers, readers and a subscriber, and
// mixes in appends that fail (a taken key), which share group commits with appends that succeed:
// no caller may see "database is locked", each failure must undo only itself, and the subscriber
// must see every stored event once, in order.
func TestConcurrentWritersNeverLocked(t *testing.T) {
	t.Parallel()
	s := openTemp(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const writers, perWriter = 8, 300
	if _, err := s.Append(ctx, eventstore.Append{Stream: "holder", Expected: eventstore.NoStream, Events: []eventstore.NewEvent{event("Held", 0)}, Claim: []string{"taken"}}); err != nil {
		t.Fatal(err)
	}
	want := 1 + writers*perWriter*9/10

	sub := make(chan error, 1)
	go func() {
		n := 0
		var last uint64
		for e, err := range s.Subscribe(ctx, 0, eventstore.Filter{}) {
			if err != nil {
				sub <- fmt.Errorf("after %d events: %w", n, err)
				return
			}
			if e.GlobalPosition <= last {
				sub <- fmt.Errorf("position %d after %d", e.GlobalPosition, last)
				return
			}
			last = e.GlobalPosition
			if n++; n == want {
				sub <- nil
				return
			}
		}
	}()

	stop := make(chan struct{})
	var readers sync.WaitGroup
	for r := range 2 {
		readers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				seq := s.ReadAll(ctx, 0, eventstore.Filter{Types: []string{"Written"}})
				if r == 1 {
					seq = s.ReadStream(ctx, "w-0-0", 0)
				}
				for _, err := range seq {
					if err != nil {
						t.Errorf("reader %d: %v", r, err)
						return
					}
				}
			}
		})
	}

	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				a := eventstore.Append{Stream: fmt.Sprintf("w-%d-%d", w, i), Expected: eventstore.NoStream, Events: []eventstore.NewEvent{event("Written", i)}}
				if i%10 == 9 {
					a.Claim = []string{"free-" + uuid.NewString(), "taken"}
				}
				_, err := s.Append(ctx, a)
				switch {
				case i%10 == 9 && errors.Is(err, eventstore.ErrKeyTaken):
				case i%10 == 9:
					t.Errorf("writer %d, append %d claims a taken key: err = %v, want ErrKeyTaken", w, i, err)
				case err != nil:
					t.Errorf("writer %d, append %d: %v", w, i, err)
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	readers.Wait()

	n := 0
	for e, err := range s.ReadAll(ctx, 0, eventstore.Filter{}) {
		if err != nil {
			t.Fatal(err)
		}
		var w, i int
		if _, err := fmt.Sscanf(e.StreamID, "w-%d-%d", &w, &i); err == nil && i%10 == 9 {
			t.Errorf("the failed append to %s stored an event", e.StreamID)
		}
		n++
	}
	if n != want {
		t.Errorf("log holds %d events, want %d", n, want)
	}
	if err := <-sub; err != nil {
		t.Errorf("subscriber: %v", err)
	}
}

// Another process writing the same file does not wake this one's subscribers: PollInterval does.
func TestSubscribeSeesOtherProcessWrites(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "events.db")
	follower := open(t, sqlite.Options{Path: path, PollInterval: 20 * time.Millisecond})
	defer follower.Close()
	other := open(t, sqlite.Options{Path: path})
	defer other.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got := make(chan eventstore.Event, 1)
	go func() {
		for e, err := range follower.Subscribe(ctx, 0, eventstore.Filter{}) {
			if err != nil {
				t.Errorf("subscribe: %v", err)
				close(got)
				return
			}
			got <- e
			return
		}
	}()
	time.Sleep(50 * time.Millisecond) // let the subscriber catch up with the empty log and wait
	res, err := other.Append(ctx, eventstore.Append{Stream: "s-1", Expected: eventstore.NoStream, Events: []eventstore.NewEvent{event("FromElsewhere", 1)}})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case e, ok := <-got:
		if ok && (e.Type != "FromElsewhere" || e.GlobalPosition != res.FirstPosition) {
			t.Errorf("got %s at %d, want FromElsewhere at %d", e.Type, e.GlobalPosition, res.FirstPosition)
		}
	case <-ctx.Done():
		t.Fatal("the subscriber never saw the other store's append")
	}
}

// Every subscriber of a store sees another process's writes, also after all the earlier
// subscriptions ended (the one shared watch of the file stops with the last and starts again).
func TestSubscribersSeeOtherProcessWritesAfterAQuietSpell(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "events.db")
	follower := open(t, sqlite.Options{Path: path, PollInterval: 20 * time.Millisecond})
	defer follower.Close()
	other := open(t, sqlite.Options{Path: path})
	defer other.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	first, stop := context.WithTimeout(ctx, 100*time.Millisecond)
	for _, err := range follower.Subscribe(first, 0, eventstore.Filter{}) {
		if err == nil {
			t.Fatal("an event in an empty log")
		}
		break // the end of first
	}
	stop()
	time.Sleep(100 * time.Millisecond) // the shared watch sees no subscription and stops

	const subscribers = 3
	got := make(chan eventstore.Event, subscribers)
	for range subscribers {
		go func() {
			for e, err := range follower.Subscribe(ctx, 0, eventstore.Filter{}) {
				if err == nil {
					got <- e
				}
				return
			}
		}()
	}
	time.Sleep(50 * time.Millisecond) // let them catch up with the empty log and wait
	res, err := other.Append(ctx, eventstore.Append{Stream: "s-1", Expected: eventstore.NoStream, Events: []eventstore.NewEvent{event("FromElsewhere", 1)}})
	if err != nil {
		t.Fatal(err)
	}
	for range subscribers {
		select {
		case e := <-got:
			if e.GlobalPosition != res.FirstPosition {
				t.Errorf("got position %d, want %d", e.GlobalPosition, res.FirstPosition)
			}
		case <-ctx.Done():
			t.Fatal("a subscriber never saw the other store's append")
		}
	}
}
