package esdb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	esdbclient "github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/uuid"

	"github.com/idlog/idlog/eventstore"
)

const (
	// scanLimit is how many of a stream's last events are searched for an append's ids when the
	// server cannot say where a retried append landed.
	scanLimit = 1000
	// idClockMargin: an event is stored after its UUIDv7 id was made, so a search for ids stops at
	// events recorded this long before the oldest id's time (twice the clock skew it tolerates
	// between the idlog processes that make ids and those that append).
	idClockMargin = 5 * time.Minute
)

// storedMetadata is the user metadata of every event: the envelope's metadata beside what
// EventStoreDB has no field for.
type storedMetadata struct {
	SchemaVersion int       `json:"schema_version"`
	RecordedAt    time.Time `json:"recorded_at"`
	eventstore.Metadata
	// EventStoreDB's own names, so its $by_correlation_id projection works if an operator enables it.
	ESCorrelationID string `json:"$correlationId,omitempty"`
	ESCausationID   string `json:"$causationId,omitempty"`
}

func eventData(events []eventstore.NewEvent, at time.Time) ([]esdbclient.EventData, error) {
	out := make([]esdbclient.EventData, len(events))
	for i, e := range events {
		meta, err := json.Marshal(storedMetadata{
			SchemaVersion: e.SchemaVersion, RecordedAt: at, Metadata: e.Metadata,
			ESCorrelationID: e.Metadata.CorrelationID, ESCausationID: e.Metadata.CausationID,
		})
		if err != nil {
			return nil, fmt.Errorf("eventstore/esdb: encode metadata of event %d: %w", i, err)
		}
		out[i] = esdbclient.EventData{EventID: e.ID, EventType: e.Type, ContentType: esdbclient.ContentTypeJson, Data: e.Data, Metadata: meta}
	}
	return out, nil
}

// decode turns a stored event of the namespace into our envelope.
func (s *Store) decode(r *esdbclient.RecordedEvent) (eventstore.Event, error) {
	if r.Position.Commit == math.MaxUint64 {
		return eventstore.Event{}, fmt.Errorf("eventstore/esdb: event %s of %q came without a $all position (EventStoreDB before %d.%d)", r.EventID, r.StreamID, minServerMajor, minServerMinor)
	}
	var m storedMetadata
	if err := json.Unmarshal(r.UserMetadata, &m); err != nil || m.SchemaVersion < 1 {
		return eventstore.Event{}, fmt.Errorf("eventstore/esdb: event %s at %s@%d carries no idlog metadata", r.EventID, r.StreamID, r.EventNumber)
	}
	at := m.RecordedAt
	if at.IsZero() {
		at = r.CreatedDate
	}
	return eventstore.Event{
		ID:             r.EventID,
		StreamID:       strings.TrimPrefix(r.StreamID, s.ns),
		StreamVersion:  r.EventNumber + 1,
		GlobalPosition: r.Position.Commit,
		Type:           r.EventType,
		SchemaVersion:  m.SchemaVersion,
		Data:           json.RawMessage(r.Data),
		Metadata:       m.Metadata,
		RecordedAt:     at.UTC().Truncate(time.Microsecond),
	}, nil
}

// Append implements eventstore.Store. See the package comment for how unique keys and retries
// work on EventStoreDB.
func (s *Store) Append(ctx context.Context, a eventstore.Append) (eventstore.AppendResult, error) {
	ctx, client, end, err := s.begin(ctx)
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	defer end()
	if err := a.Validate(); err != nil {
		return eventstore.AppendResult{}, err
	}
	if len(a.Outbox) > 0 {
		// No transaction spans EventStoreDB and a SQL table: callers hand messages off instead.
		return eventstore.AppendResult{}, fmt.Errorf("%w: EventStoreDB keeps no outbox", eventstore.ErrInvalidAppend)
	}
	if a.DataKey != nil {
		return eventstore.AppendResult{}, fmt.Errorf("%w: EventStoreDB keeps no data keys", eventstore.ErrInvalidAppend)
	}
	if err := checkStreamID(a.Stream); err != nil {
		return eventstore.AppendResult{}, err
	}
	expected, err := expectedRevision(a.Expected)
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	events, err := eventstore.WithIDs(a.Events)
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	at := time.Now().UTC().Truncate(time.Microsecond)
	data, err := eventData(events, at)
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	op := &appendOp{s: s, c: client, a: a, stream: s.ns + a.Stream, events: events, at: at}
	claims, releases, keep := keySets(a.Claim, a.Release)

	switch {
	case a.Expected == eventstore.Any:
		// The server checks Any appends against a cache of recent ids only; look for ourselves.
		r, found, err := op.findStored(ctx)
		if err != nil || found {
			return r, err
		}
	case len(claims) > 0:
		// Settle the expected version before touching reservations, as a SQL store would.
		v, err := op.version(ctx)
		if err != nil {
			return eventstore.AppendResult{}, err
		}
		if v != uint64(a.Expected) {
			return op.rejected(ctx)
		}
	}

	held, err := op.claimAll(ctx, claims, keep)
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	w, err := client.AppendToStream(ctx, op.stream, esdbclient.AppendToStreamOptions{ExpectedRevision: expected}, data...)
	if err != nil {
		return op.afterFailure(ctx, err, held, releases)
	}
	// The events are stored: what follows must run even if the caller gives up now.
	cctx, cancel := compensation(ctx)
	defer cancel()
	r, err := op.readBack(cctx, w.NextExpectedVersion)
	if err != nil {
		op.releaseAll(cctx, releases)
		return eventstore.AppendResult{}, err
	}
	op.settled(cctx, r, held, releases)
	return r, nil
}

// settled finishes an append whose events are stored with result r. If this call stored them, it
// releases the keys; if the server recognised a retry of an earlier append (whose recorded_at they
// carry, not this call's), nothing is stored now, and claims this call made are undone.
func (op *appendOp) settled(ctx context.Context, r eventstore.AppendResult, held []claim, releases []string) {
	if r.RecordedAt.Equal(op.at) {
		op.releaseAll(ctx, releases)
		return
	}
	op.logUndo(op.undo(ctx, fresh(held)))
}

// appendOp is one Append in progress.
type appendOp struct {
	s      *Store
	c      *esdbclient.Client
	a      eventstore.Append
	stream string // with the namespace
	events []eventstore.NewEvent
	at     time.Time // recorded_at of this call's events, which tells them from an earlier attempt's
}

func (op *appendOp) concurrency() error {
	return fmt.Errorf("%w: stream %q is not at %s", eventstore.ErrConcurrency, op.a.Stream, op.a.Expected)
}

func (op *appendOp) duplicate() error {
	return fmt.Errorf("%w: some of the event ids appended to %q are already stored, but not as this same append", eventstore.ErrDuplicateEvent, op.a.Stream)
}

// version returns the stream's current version, 0 if it has no event.
func (op *appendOp) version(ctx context.Context) (uint64, error) {
	last, err := lastEvent(ctx, op.c, op.stream)
	if err != nil {
		return 0, op.s.fail(ctx, op.c, err, "read the version of stream %q", op.a.Stream)
	}
	if last == nil {
		return 0, nil
	}
	return last.EventNumber + 1, nil
}

// rejected answers an append the stream's version refuses: the original result if it is a
// retry of an append already stored, else a concurrency or duplicate error.
func (op *appendOp) rejected(ctx context.Context) (eventstore.AppendResult, error) {
	r, found, err := op.findStored(ctx)
	switch {
	case err != nil:
		return eventstore.AppendResult{}, err
	case found:
		return r, nil
	default:
		return eventstore.AppendResult{}, op.concurrency()
	}
}

// afterFailure handles a failed write of the events: it tells a retry of a stored append from a
// conflict and undoes the claims of an append that is not stored.
func (op *appendOp) afterFailure(ctx context.Context, err error, held []claim, releases []string) (eventstore.AppendResult, error) {
	cctx, cancel := compensation(ctx)
	defer cancel()
	if isWrongExpectedVersion(err) {
		r, found, ferr := op.findStored(cctx)
		if ferr == nil && found {
			// Claims this call made are not the stored append's; those it adopted are.
			op.logUndo(op.undo(cctx, fresh(held)))
			return r, nil
		}
		uerr := op.undo(cctx, held)
		if ferr != nil {
			return eventstore.AppendResult{}, errors.Join(ferr, uerr)
		}
		return eventstore.AppendResult{}, errors.Join(op.concurrency(), uerr)
	}
	failure := op.s.fail(ctx, op.c, err, "append to stream %q", op.a.Stream)
	if op.s.isClosed() {
		return eventstore.AppendResult{}, failure
	}
	// The write may have landed with only its answer lost: look before undoing anything.
	r, found, ferr := op.findStored(cctx)
	switch {
	case ferr == nil && found:
		op.settled(cctx, r, held, releases)
		return r, nil
	case ferr == nil:
		return eventstore.AppendResult{}, errors.Join(failure, op.undo(cctx, held))
	default:
		// Unknown: keep the claims, which a retry of this append adopts.
		return eventstore.AppendResult{}, failure
	}
}

// readBack returns the result of an append whose last event the server put at revision last,
// checking that the events there are this append's.
func (op *appendOp) readBack(ctx context.Context, last uint64) (eventstore.AppendResult, error) {
	n := uint64(len(op.events))
	if last+1 < n {
		return eventstore.AppendResult{}, fmt.Errorf("eventstore/esdb: append of %d events to %q ended at revision %d", n, op.a.Stream, last)
	}
	r, matched, err := op.matchAt(ctx, last+1-n)
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	if matched != len(op.events) {
		return eventstore.AppendResult{}, op.duplicate()
	}
	return r, nil
}

// matchAt reads len(events) events of the stream from revision rev and counts those that carry
// the id of the append's event at the same place; if all do, it returns the append's result.
func (op *appendOp) matchAt(ctx context.Context, rev uint64) (eventstore.AppendResult, int, error) {
	var first, last *esdbclient.RecordedEvent
	matched := 0
	_, err := readStream(ctx, op.c, op.stream, esdbclient.ReadStreamOptions{From: esdbclient.Revision(rev)}, uint64(len(op.events)),
		func(r *esdbclient.RecordedEvent) bool {
			i := int(r.EventNumber - rev)
			if i < len(op.events) && r.EventID == op.events[i].ID {
				matched++
			}
			if first == nil {
				first = r
			}
			last = r
			return true
		})
	if err != nil {
		return eventstore.AppendResult{}, 0, op.s.fail(ctx, op.c, err, "read back stream %q", op.a.Stream)
	}
	if matched != len(op.events) {
		return eventstore.AppendResult{}, matched, nil
	}
	r, err := op.s.result(first, last)
	return r, matched, err
}

// findStored looks for the append's events in the stream: where an exact expected version put
// them, else among the stream's last scanLimit events. It reports the original result if they are
// all there in order, and ErrDuplicateEvent if only some are.
func (op *appendOp) findStored(ctx context.Context) (eventstore.AppendResult, bool, error) {
	if op.a.Expected >= 0 {
		r, matched, err := op.matchAt(ctx, uint64(op.a.Expected))
		switch {
		case err != nil:
			return eventstore.AppendResult{}, false, err
		case matched == len(op.events):
			return r, true, nil
		case matched > 0:
			return eventstore.AppendResult{}, false, op.duplicate()
		}
	}
	want := make(map[uuid.UUID]bool, len(op.events))
	for _, e := range op.events {
		want[e.ID] = true
	}
	found := map[uuid.UUID]uint64{}
	oldest := op.oldestPossible()
	_, err := readStream(ctx, op.c, op.stream, esdbclient.ReadStreamOptions{Direction: esdbclient.Backwards, From: esdbclient.End{}}, scanLimit,
		func(r *esdbclient.RecordedEvent) bool {
			if want[r.EventID] {
				found[r.EventID] = r.EventNumber
				return len(found) < len(want)
			}
			// Older events cannot be ours: the usual fresh append reads one event here.
			at := recordedAt(r)
			return oldest.IsZero() || at.IsZero() || !at.Before(oldest)
		})
	if err != nil {
		return eventstore.AppendResult{}, false, op.s.fail(ctx, op.c, err, "search stream %q for a retried append", op.a.Stream)
	}
	if len(found) == 0 {
		return eventstore.AppendResult{}, false, nil
	}
	base := found[op.events[0].ID]
	for i, e := range op.events {
		if rev, ok := found[e.ID]; !ok || rev != base+uint64(i) {
			return eventstore.AppendResult{}, false, op.duplicate()
		}
	}
	r, matched, err := op.matchAt(ctx, base)
	if err != nil {
		return eventstore.AppendResult{}, false, err
	}
	if matched != len(op.events) {
		return eventstore.AppendResult{}, false, op.duplicate()
	}
	return r, true, nil
}

// oldestPossible is the earliest recorded_at an event of this append can be stored with, zero
// when an id is not a UUIDv7 (and so tells nothing of when it was made).
func (op *appendOp) oldestPossible() time.Time {
	var oldest time.Time
	for _, e := range op.events {
		if e.ID.Version() != 7 {
			return time.Time{}
		}
		sec, nsec := e.ID.Time().UnixTime()
		if t := time.Unix(sec, nsec); oldest.IsZero() || t.Before(oldest) {
			oldest = t
		}
	}
	return oldest.Add(-idClockMargin)
}

// recordedAt is the recorded_at of a stored event, zero if it has none.
func recordedAt(r *esdbclient.RecordedEvent) time.Time {
	var m struct {
		RecordedAt time.Time `json:"recorded_at"`
	}
	_ = json.Unmarshal(r.UserMetadata, &m) // no metadata reads as zero, which the search passes by
	return m.RecordedAt
}

func (s *Store) result(first, last *esdbclient.RecordedEvent) (eventstore.AppendResult, error) {
	f, err := s.decode(first)
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	l, err := s.decode(last)
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	return eventstore.AppendResult{
		FirstVersion: f.StreamVersion, LastVersion: l.StreamVersion,
		FirstPosition: f.GlobalPosition, LastPosition: l.GlobalPosition,
		RecordedAt: f.RecordedAt,
	}, nil
}
