package audit_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idlog/idlog/audit"
	"github.com/idlog/idlog/eventstore"
)

// recorder is a CheckpointPublisher that keeps what it is given and fails its first calls.
type recorder struct {
	mu       sync.Mutex
	failures int
	got      []audit.Checkpoint
}

func (r *recorder) PublishCheckpoint(_ context.Context, c audit.Checkpoint) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failures > 0 {
		r.failures--
		return errors.New("NATS is down")
	}
	r.got = append(r.got, c)
	return nil
}

func (r *recorder) published() []audit.Checkpoint {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]audit.Checkpoint(nil), r.got...)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func ledgerCheckpoints(t *testing.T, l *audit.Ledger) []audit.Checkpoint {
	t.Helper()
	var out []audit.Checkpoint
	for c, err := range l.Checkpoints(context.Background(), 0, 1<<62) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	return out
}

// TestSealerFollowsLiveAppends runs two sealers (one would do; two must not break the ledger)
// beside concurrent writers, with a publisher that fails at first.
func TestSealerFollowsLiveAppends(t *testing.T) {
	t.Parallel()
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithCancel(context.Background())
			e := b.open(t)
			pub := &recorder{failures: 2}
			var wg sync.WaitGroup
			for range 2 {
				s := newSealer(t, e, audit.SealerOptions{CheckpointEvery: 5, CheckpointInterval: 50 * time.Millisecond,
					BatchSize: 3, Publisher: pub, Retry: 10 * time.Millisecond})
				wg.Go(func() {
					if err := s.Run(ctx); err != nil {
						t.Errorf("Run: %v", err)
					}
				})
			}
			var writers sync.WaitGroup
			for w := range 4 {
				writers.Go(func() {
					for i := range 10 {
						_, err := e.store.Append(ctx, eventstore.Append{Stream: fmt.Sprintf("w-%d", w), Expected: eventstore.Any,
							Events: []eventstore.NewEvent{{Type: "Tick", SchemaVersion: 1, Data: []byte(fmt.Sprintf(`{"i":%d}`, i))}}})
						if err != nil {
							t.Error(err)
						}
					}
				})
			}
			writers.Wait()
			log := logOf(t, e.store)
			last := log[len(log)-1]
			waitFor(t, "the sealers to reach the end of the log and checkpoint it", func() bool {
				cps := ledgerCheckpoints(t, e.ledger)
				return len(cps) > 0 && cps[len(cps)-1].Position == last.GlobalPosition
			})
			waitFor(t, "every checkpoint to be published", func() bool {
				return len(pub.published()) > 0 && pub.published()[len(pub.published())-1].Position == last.GlobalPosition
			})
			cancel()
			wg.Wait()

			r := verify(t, e)
			if !r.OK() || r.Verified != uint64(len(log)) || r.Unsealed != 0 {
				t.Fatalf("after live sealing: %+v (%v)", r, r.Problem)
			}
			// Every checkpoint reached the publisher, first published in order. A checkpoint may
			// come again later (after a failure, or because both sealers read it as unpublished);
			// NATS drops such repeats by their message id, the ordinal.
			cps := ledgerCheckpoints(t, e.ledger)
			var seen []audit.Checkpoint
			published := map[uint64]bool{}
			for _, c := range pub.published() {
				if published[c.Ordinal] {
					continue
				}
				if len(seen) > 0 && c.Ordinal < seen[len(seen)-1].Ordinal {
					t.Fatalf("checkpoint %d first published after %d", c.Ordinal, seen[len(seen)-1].Ordinal)
				}
				published[c.Ordinal] = true
				seen = append(seen, c)
			}
			if len(seen) != len(cps) {
				t.Fatalf("published %d distinct checkpoints, the ledger holds %d", len(seen), len(cps))
			}
			for i := range cps {
				if !seen[i].SealedAt.Equal(cps[i].SealedAt) || seen[i].Ordinal != cps[i].Ordinal || seen[i].Chain != cps[i].Chain || seen[i].Position != cps[i].Position {
					t.Fatalf("published %+v, the ledger holds %+v", seen[i], cps[i])
				}
			}
			// The two sealers' tree is the log's: each checkpoint's root, and every root since.
			leaves := leavesOf(log)
			for _, c := range cps {
				if want := naiveRoot(leaves[:c.Ordinal]); c.Root != want {
					t.Fatalf("checkpoint %d: root %s, want %s", c.Ordinal, c.Root, want)
				}
			}
			for size := range uint64(len(log)) + 1 {
				if got, err := e.ledger.Root(context.Background(), size); err != nil || got != naiveRoot(leaves[:size]) {
					t.Fatalf("root at %d: %s, %v", size, got, err)
				}
			}
			// A checkpoint at least every 5 events.
			prev := uint64(0)
			for _, c := range cps {
				if c.Ordinal-prev > 5 {
					t.Errorf("checkpoints at ordinals %d and %d: more than 5 events apart", prev, c.Ordinal)
				}
				prev = c.Ordinal
			}
		})
	}
}

func TestSealerOptionsAreValidated(t *testing.T) {
	t.Parallel()
	e := openSQLite(t)
	cases := map[string]audit.SealerOptions{
		"checkpoint every (-1)":     {CheckpointEvery: -1},
		"checkpoint interval (-1s)": {CheckpointInterval: -time.Second},
		"batch size (10001)":        {BatchSize: 10001},
		"retry (-1ns)":              {Retry: -1},
	}
	for want, o := range cases {
		o.Store, o.Ledger = e.store, e.ledger
		if _, err := audit.NewSealer(o); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("NewSealer(%+v): %v, want an error naming %q", o, err, want)
		}
	}
}
