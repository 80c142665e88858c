package esdb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	esdbclient "github.com/EventStore/EventStore-Client-Go/v4/esdb"

	"github.com/idlog/idlog/eventstore"
)

// Event types of reservation streams.
const (
	keyClaimed  = "KeyClaimed"
	keyReleased = "KeyReleased"
)

// maxKeyAttempts bounds how often one claim or release re-reads a reservation stream that changed
// under it.
const maxKeyAttempts = 20

type keyBody struct {
	Stream string `json:"stream"`
}

// claim is a reservation an append holds while it writes its events.
type claim struct {
	key      string
	stream   string // the reservation stream
	revision uint64 // of its KeyClaimed event
	fresh    bool   // made by this call, not adopted from an earlier attempt of the same append
}

func fresh(held []claim) []claim {
	var out []claim
	for _, c := range held {
		if c.fresh {
			out = append(out, c)
		}
	}
	return out
}

// keySets returns the keys to claim and to release, each once and sorted (racing appends that
// claim the same keys then meet on the first, and one of them wins), and the keys that are in
// both: a key released and claimed in one append stays with the stream that holds it.
func keySets(claimKeys, releaseKeys []string) (claims, releases []string, keep map[string]bool) {
	claims = slices.Compact(slices.Sorted(slices.Values(claimKeys)))
	keep = map[string]bool{}
	for _, k := range releaseKeys {
		if slices.Contains(claims, k) {
			keep[k] = true
		} else if !slices.Contains(releases, k) {
			releases = append(releases, k)
		}
	}
	slices.Sort(releases)
	return claims, releases, keep
}

func (op *appendOp) keyEvent(typ, purpose, key string) esdbclient.EventData {
	data, _ := json.Marshal(keyBody{Stream: op.a.Stream}) // a struct of one string cannot fail
	meta, _ := json.Marshal(storedMetadata{SchemaVersion: 1})
	return esdbclient.EventData{
		EventID:     derivedID(purpose, op.a.Stream, op.events[0].ID, key),
		EventType:   typ,
		ContentType: esdbclient.ContentTypeJson,
		Data:        data,
		Metadata:    meta,
	}
}

// claimAll claims keys in order. If one is taken, it undoes the claims made so far and returns a
// *eventstore.KeyTakenError.
func (op *appendOp) claimAll(ctx context.Context, keys []string, keep map[string]bool) ([]claim, error) {
	var held []claim
	for _, k := range keys {
		c, ok, err := op.claimKey(ctx, k, keep[k])
		if err != nil {
			cctx, cancel := compensation(ctx)
			defer cancel()
			return nil, errors.Join(err, op.undo(cctx, held))
		}
		if ok {
			held = append(held, c)
		}
	}
	return held, nil
}

// claimKey appends KeyClaimed to the key's reservation stream if the key is free. ok is false
// when the stream already holds the key and keeps it (keep).
func (op *appendOp) claimKey(ctx context.Context, key string, keep bool) (c claim, ok bool, err error) {
	res := ReservationStream(op.s.ns, key)
	ev := op.keyEvent(keyClaimed, "claim", key)
	for range maxKeyAttempts {
		last, err := lastEvent(ctx, op.c, res)
		if err != nil {
			return claim{}, false, op.s.fail(ctx, op.c, err, "read the reservation of a unique key of %q", op.a.Stream)
		}
		var expected esdbclient.ExpectedRevision = esdbclient.NoStream{}
		if last != nil {
			switch last.EventType {
			case keyReleased:
				expected = esdbclient.Revision(last.EventNumber)
			case keyClaimed:
				if last.EventID == ev.EventID {
					// An earlier attempt of this same append claimed it: adopt the claim.
					return claim{key: key, stream: res, revision: last.EventNumber}, true, nil
				}
				if keep && ownerOf(last) == op.a.Stream {
					return claim{}, false, nil
				}
				return claim{}, false, &eventstore.KeyTakenError{Key: key}
			default:
				return claim{}, false, fmt.Errorf("eventstore/esdb: reservation stream %s ends with an event of type %q", res, last.EventType)
			}
		}
		w, err := op.c.AppendToStream(ctx, res, esdbclient.AppendToStreamOptions{ExpectedRevision: expected}, ev)
		if isWrongExpectedVersion(err) {
			continue // someone claimed or released meanwhile: look again
		}
		if err != nil {
			return claim{}, false, op.s.fail(ctx, op.c, err, "claim a unique key for %q", op.a.Stream)
		}
		return claim{key: key, stream: res, revision: w.NextExpectedVersion, fresh: true}, true, nil
	}
	return claim{}, false, fmt.Errorf("%w: the reservation of a unique key of %q kept changing; retry", eventstore.ErrConcurrency, op.a.Stream)
}

func ownerOf(r *esdbclient.RecordedEvent) string {
	var b keyBody
	if json.Unmarshal(r.Data, &b) != nil {
		return ""
	}
	return b.Stream
}

// undo releases claims of an append that did not store its events. A claim that is no longer the
// last event of its reservation stream was released already.
func (op *appendOp) undo(ctx context.Context, held []claim) error {
	var errs []error
	for _, c := range slices.Backward(held) {
		ev := op.keyEvent(keyReleased, "undo", c.key)
		_, err := op.c.AppendToStream(ctx, c.stream, esdbclient.AppendToStreamOptions{ExpectedRevision: esdbclient.Revision(c.revision)}, ev)
		if err != nil && !isWrongExpectedVersion(err) {
			errs = append(errs, fmt.Errorf("eventstore/esdb: undo the claim in %s: %w", c.stream, err))
		}
	}
	return errors.Join(errs...)
}

func (op *appendOp) logUndo(err error) {
	if err != nil {
		op.s.log.Error("eventstore/esdb: a unique key claimed for an append that was already stored stays claimed; release it by hand",
			"stream", op.a.Stream, "err", err)
	}
}

// releaseAll releases, after the events are stored, the keys this stream holds. The append has
// happened by then, so a failure is logged with the reservation stream to fix by hand rather than
// returned.
func (op *appendOp) releaseAll(ctx context.Context, keys []string) {
	for _, k := range keys {
		if err := op.release(ctx, k); err != nil {
			op.s.log.Error("eventstore/esdb: a unique key the append released is still held; append KeyReleased by hand",
				"reservation_stream", ReservationStream(op.s.ns, k), "stream", op.a.Stream, "err", err)
		}
	}
}

func (op *appendOp) release(ctx context.Context, key string) error {
	res := ReservationStream(op.s.ns, key)
	ev := op.keyEvent(keyReleased, "release", key)
	for range maxKeyAttempts {
		last, err := lastEvent(ctx, op.c, res)
		if err != nil {
			return err
		}
		if last == nil || last.EventType != keyClaimed || ownerOf(last) != op.a.Stream {
			return nil // not held by this stream: releasing changes nothing
		}
		_, err = op.c.AppendToStream(ctx, res, esdbclient.AppendToStreamOptions{ExpectedRevision: esdbclient.Revision(last.EventNumber)}, ev)
		if !isWrongExpectedVersion(err) {
			return err
		}
	}
	return fmt.Errorf("the reservation kept changing")
}
