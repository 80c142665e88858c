package audit

import (
	"context"
	"iter"
)

// prefetch runs the sequence open(ctx) in a goroutine, a batch of items ahead of the consumer, so
// that reading (a database round trip) and the consumer's work (hashing) overlap. Memory stays
// bounded: at most three batches are in flight. Stopping early cancels the producer and waits
// for it.
func prefetch[T any](ctx context.Context, batch int, open func(ctx context.Context) iter.Seq2[T, error]) iter.Seq2[T, error] {
	return prefetchAhead(ctx, batch, 1, open)
}

// prefetchAhead is prefetch with room for `ahead` batches waiting for the consumer: a source that
// comes in pages larger than a batch (ScanAll) can hand over a whole page and go on reading the
// next while the consumer works through it. At most ahead+2 batches are in flight.
func prefetchAhead[T any](ctx context.Context, batch, ahead int, open func(ctx context.Context) iter.Seq2[T, error]) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		ctx, cancel := context.WithCancel(ctx)
		type chunk struct {
			items []T
			err   error
		}
		ch := make(chan chunk, ahead)
		done := make(chan struct{})
		go func() {
			defer close(done)
			defer close(ch)
			send := func(c chunk) bool {
				select {
				case ch <- c:
					return true
				case <-ctx.Done():
					return false
				}
			}
			items := make([]T, 0, batch)
			for v, err := range open(ctx) {
				if err != nil {
					if len(items) > 0 && !send(chunk{items: items}) {
						return
					}
					send(chunk{err: err})
					return
				}
				items = append(items, v)
				if len(items) == batch {
					if !send(chunk{items: items}) {
						return
					}
					items = make([]T, 0, batch)
				}
			}
			if len(items) > 0 {
				send(chunk{items: items})
			}
		}()
		defer func() {
			cancel()
			for range ch { //nolint:revive // drain so the producer can end
			}
			<-done
		}()
		var zero T
		for c := range ch {
			if c.err != nil {
				yield(zero, c.err)
				return
			}
			for _, v := range c.items {
				if !yield(v, nil) {
					return
				}
			}
		}
	}
}
