package follower_test

import (
	"context"
	"iter"
	"testing"
	"time"

	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/follower"
)

// behindStep makes each batch durable only when the next one is applied, as the NATS relay does
// with publishes still awaiting their acknowledgement.
type behindStep struct{ last, durable uint64 }

func (s *behindStep) Resume(context.Context) (uint64, error) { return 0, nil }

func (s *behindStep) Apply(_ context.Context, batch []eventstore.Event) (uint64, error) {
	s.durable, s.last = s.last, batch[len(batch)-1].GlobalPosition
	return s.durable, nil
}

// Events a step makes durable after its Apply returned are counted once a later position passes
// them, not lost from the count.
func TestPassCountsEventsMadeDurableLater(t *testing.T) {
	t.Parallel()
	const n = 100
	open := func(context.Context) iter.Seq2[eventstore.Event, error] {
		return func(yield func(eventstore.Event, error) bool) {
			for i := range n {
				if !yield(eventstore.Event{GlobalPosition: uint64(10 * (i + 1))}, nil) {
					return
				}
			}
		}
	}
	step := &behindStep{}
	counted := 0
	pos, err := follower.Pass(context.Background(), 0, open, follower.Pacing{Step: step, BatchSize: 7,
		Applied: func(_ uint64, k int) { counted += k }})
	if err != nil {
		t.Fatal(err)
	}
	if pos != step.durable || pos == 0 {
		t.Fatalf("Pass = %d, want the step's durable position %d", pos, step.durable)
	}
	if want := int(pos / 10); counted != want {
		t.Fatalf("counted %d events up to position %d, want %d", counted, pos, want)
	}
}

// With Linger, events that arrive one by one within it are applied as one batch.
func TestPassLingersForMoreEvents(t *testing.T) {
	t.Parallel()
	const n = 5
	open := func(context.Context) iter.Seq2[eventstore.Event, error] {
		return func(yield func(eventstore.Event, error) bool) {
			for i := range n {
				if i > 0 {
					time.Sleep(30 * time.Millisecond)
				}
				if !yield(eventstore.Event{GlobalPosition: uint64(i + 1)}, nil) {
					return
				}
			}
		}
	}
	step := &countingStep{}
	if _, err := follower.Pass(context.Background(), 0, open, follower.Pacing{Step: step, BatchSize: 100, Linger: 10 * time.Second}); err != nil {
		t.Fatal(err)
	}
	if len(step.batches) != 1 || step.batches[0] != n {
		t.Fatalf("batches %v, want one of %d", step.batches, n)
	}
}

// countingStep records the size of each batch it is given.
type countingStep struct{ batches []int }

func (s *countingStep) Resume(context.Context) (uint64, error) { return 0, nil }

func (s *countingStep) Apply(_ context.Context, batch []eventstore.Event) (uint64, error) {
	s.batches = append(s.batches, len(batch))
	return batch[len(batch)-1].GlobalPosition, nil
}
