package esdb

import (
	"context"
	"errors"
	"io"
	"iter"

	esdbclient "github.com/EventStore/EventStore-Client-Go/v4/esdb"

	"github.com/idlog/idlog/eventstore"
)

// Page sizes of reads: one request each, so memory stays flat whatever the log's size.
const (
	streamPage = 256
	allPage    = 512
)

// readStream reads up to count events of one stream and hands each to fn until fn returns false.
// A stream that does not exist reads as empty. It returns how many events it received.
func readStream(ctx context.Context, c *esdbclient.Client, stream string, opts esdbclient.ReadStreamOptions, count uint64, fn func(*esdbclient.RecordedEvent) bool) (int, error) {
	rs, err := c.ReadStream(ctx, stream, opts, count)
	if err != nil {
		if isNotFound(err) {
			return 0, nil
		}
		return 0, err
	}
	defer rs.Close()
	n := 0
	for {
		r, err := rs.Recv()
		switch {
		case errors.Is(err, io.EOF):
			return n, nil
		case isNotFound(err):
			return n, nil
		case err != nil:
			return n, err
		}
		n++
		if r.Event != nil && !fn(r.Event) {
			return n, nil
		}
	}
}

// lastEvent returns the last event of a stream, nil if it has none.
func lastEvent(ctx context.Context, c *esdbclient.Client, stream string) (*esdbclient.RecordedEvent, error) {
	var last *esdbclient.RecordedEvent
	_, err := readStream(ctx, c, stream, esdbclient.ReadStreamOptions{Direction: esdbclient.Backwards, From: esdbclient.End{}}, 1,
		func(r *esdbclient.RecordedEvent) bool { last = r; return false })
	return last, err
}

// ReadStream implements eventstore.Store.
func (s *Store) ReadStream(ctx context.Context, stream string, afterVersion uint64) iter.Seq2[eventstore.Event, error] {
	return func(yield func(eventstore.Event, error) bool) {
		ctx, client, end, err := s.begin(ctx)
		if err != nil {
			yield(eventstore.Event{}, err)
			return
		}
		defer end()
		if err := checkStreamID(stream); err != nil {
			yield(eventstore.Event{}, err)
			return
		}
		next := afterVersion // version v is revision v-1, so the first revision wanted is v
		for {
			var failed error
			stopped := false
			n, err := readStream(ctx, client, s.ns+stream, esdbclient.ReadStreamOptions{From: esdbclient.Revision(next)}, streamPage,
				func(r *esdbclient.RecordedEvent) bool {
					e, err := s.decode(r)
					if err != nil {
						failed = err
						return false
					}
					if !yield(e, nil) {
						stopped = true
						return false
					}
					next = r.EventNumber + 1
					return true
				})
			switch {
			case failed != nil:
				yield(eventstore.Event{}, failed)
				return
			case stopped:
				return
			case err != nil:
				yield(eventstore.Event{}, s.fail(ctx, client, err, "read stream %q", stream))
				return
			case n < streamPage:
				return
			}
		}
	}
}

// allPosition is where a read of $all resumes after position p. EventStoreDB reads from a
// position inclusively, so callers skip the event at p itself.
func allPosition(p uint64) esdbclient.AllPosition {
	if p == 0 {
		return esdbclient.Start{}
	}
	return esdbclient.Position{Commit: p, Prepare: p}
}

// globalEvent decides whether a record of $all read after position `after` is delivered under f,
// and decodes it if so.
func (s *Store) globalEvent(r *esdbclient.RecordedEvent, after uint64, f eventstore.Filter) (eventstore.Event, bool, error) {
	if r == nil || r.Position.Commit <= after {
		return eventstore.Event{}, false, nil
	}
	stream, ok := visible(s.ns, r.StreamID, r.EventType)
	if !ok || !f.Match(eventstore.Event{StreamID: stream, Type: r.EventType}) {
		return eventstore.Event{}, false, nil
	}
	e, err := s.decode(r)
	return e, err == nil, err
}

// ReadAll implements eventstore.Store. The client reads $all without a server-side filter, so
// the namespace and f are applied here, page by page.
func (s *Store) ReadAll(ctx context.Context, after uint64, f eventstore.Filter) iter.Seq2[eventstore.Event, error] {
	return func(yield func(eventstore.Event, error) bool) {
		ctx, client, end, err := s.begin(ctx)
		if err != nil {
			yield(eventstore.Event{}, err)
			return
		}
		defer end()
		from := after
		for {
			rs, err := client.ReadAll(ctx, esdbclient.ReadAllOptions{From: allPosition(from)}, allPage)
			if err != nil {
				yield(eventstore.Event{}, s.fail(ctx, client, err, "read $all after position %d", from))
				return
			}
			n, last, ok := s.readAllPage(ctx, client, rs, from, f, yield)
			rs.Close()
			if !ok || n < allPage || last <= from {
				return
			}
			from = last
		}
	}
}

// readAllPage delivers one page of $all. It returns how many records the page held, the last
// position seen, and false if the iteration has ended (the consumer stopped or an error was
// yielded).
func (s *Store) readAllPage(ctx context.Context, client *esdbclient.Client, rs *esdbclient.ReadStream, from uint64, f eventstore.Filter, yield func(eventstore.Event, error) bool) (int, uint64, bool) {
	n, last := 0, from
	for {
		r, err := rs.Recv()
		if errors.Is(err, io.EOF) {
			return n, last, true
		}
		if err != nil {
			yield(eventstore.Event{}, s.fail(ctx, client, err, "read $all after position %d", from))
			return n, last, false
		}
		n++
		if r.Event == nil {
			continue
		}
		last = max(last, r.Event.Position.Commit)
		e, ok, err := s.globalEvent(r.Event, from, f)
		if err != nil {
			yield(eventstore.Event{}, err)
			return n, last, false
		}
		if ok && !yield(e, nil) {
			return n, last, false
		}
	}
}

// Subscribe implements eventstore.Store with a catch-up subscription to $all, filtered by the
// server to the namespace (and f's stream prefix), then by f here.
func (s *Store) Subscribe(ctx context.Context, after uint64, f eventstore.Filter) iter.Seq2[eventstore.Event, error] {
	return func(yield func(eventstore.Event, error) bool) {
		ctx, client, end, err := s.begin(ctx)
		if err != nil {
			yield(eventstore.Event{}, err)
			return
		}
		defer end()
		sub, err := client.SubscribeToAll(ctx, esdbclient.SubscribeToAllOptions{
			From:   allPosition(after),
			Filter: serverFilter(s.ns, f.StreamPrefix),
		})
		if err != nil {
			yield(eventstore.Event{}, s.fail(ctx, client, err, "subscribe to $all after position %d", after))
			return
		}
		defer sub.Close()
		last := after
		for {
			msg := sub.Recv()
			switch {
			case msg.SubscriptionDropped != nil:
				yield(eventstore.Event{}, s.fail(ctx, client, msg.SubscriptionDropped.Error, "subscription to $all dropped after position %d", last))
				return
			case msg.EventAppeared != nil:
				e, ok, err := s.globalEvent(msg.EventAppeared.Event, last, f)
				if err != nil {
					yield(eventstore.Event{}, err)
					return
				}
				if !ok {
					continue
				}
				last = e.GlobalPosition
				if !yield(e, nil) {
					return
				}
			}
		}
	}
}
