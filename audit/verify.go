package audit

import (
	"context"
	"fmt"
	"iter"
	"time"

	"github.com/google/uuid"

	"github.com/idlog/idlog/eventstore"
)

// Kind says what is wrong at the first event where the log and the ledger part.
type Kind string

// The kinds of problem Verify reports.
const (
	// KindChanged: an event has other bytes than when it was sealed (data, metadata, type,
	// stream, version, time or id), at the same place in the log.
	KindChanged Kind = "changed"
	// KindDeleted: a sealed event is no longer in the log.
	KindDeleted Kind = "deleted"
	// KindInserted: the log holds an event the ledger does not know, among sealed ones.
	KindInserted Kind = "inserted"
	// KindReordered: a sealed event is in the log at another place in the global order, or at
	// another position.
	KindReordered Kind = "reordered"
	// KindLedger: the ledger itself was altered: a row is missing, or its chain disagrees with a
	// sealed checkpoint. Compare the checkpoints with the published copies.
	KindLedger Kind = "ledger"
)

// Problem is the first place where the log does not match what was sealed.
type Problem struct {
	Kind Kind `json:"kind"`
	// Ordinal is the place in the global order where the log stops matching.
	Ordinal uint64 `json:"ordinal"`
	// EventID is the event concerned: the one found at Ordinal, or the one missing there.
	EventID uuid.UUID `json:"event_id"`
	// Position, StreamID, StreamVersion and Type describe the event as the log holds it now; they
	// are zero for a deleted event.
	Position      uint64 `json:"position,omitempty"`
	StreamID      string `json:"stream_id,omitempty"`
	StreamVersion uint64 `json:"stream_version,omitempty"`
	Type          string `json:"type,omitempty"`
	// SealedOrdinal and SealedPosition are where the ledger has the event; zero if it does not
	// know it.
	SealedOrdinal  uint64 `json:"sealed_ordinal,omitempty"`
	SealedPosition uint64 `json:"sealed_position,omitempty"`
	Detail         string `json:"detail"`
}

func (p *Problem) String() string {
	return fmt.Sprintf("%s: event %s at ordinal %d: %s", p.Kind, p.EventID, p.Ordinal, p.Detail)
}

// Report is what Verify found.
type Report struct {
	// Events is how many events of the log were read (up to the first problem, then on to the end
	// of the log when a missing event had to be looked for).
	Events uint64 `json:"events"`
	// Verified events matched the ledger: ordinals 1 to Verified.
	Verified uint64 `json:"verified"`
	// Sealed is how far the ledger reached when Verify started: its last seal.
	Sealed Seal `json:"sealed"`
	// LastCheckpoint is the newest sealed checkpoint, nil if none; CheckpointsVerified counts
	// the checkpoints the recomputed chain passed through.
	LastCheckpoint      *Checkpoint `json:"last_checkpoint,omitempty"`
	CheckpointsVerified uint64      `json:"checkpoints_verified"`
	// Unsealed is how many events of the log lie after the sealed part (not checked, only chained).
	Unsealed uint64 `json:"unsealed"`
	// Head is the chain value of the last event read; with no Problem, of the whole log.
	Head Hash `json:"head"`
	// Problem is the first mismatch; nil when the log holds.
	Problem  *Problem      `json:"problem,omitempty"`
	Duration time.Duration `json:"duration_ns"`
}

// OK reports whether the log matched the ledger everywhere it was sealed.
func (r Report) OK() bool { return r.Problem == nil }

// verifyPrefetch is how many events (and seals) are read ahead of the hashing, in how many
// batches: 16,000 events (about 11 MiB of a typical log), more than a page of either store's
// ScanAll, so the reader goes on to the next page while the hashing works through the last one.
const (
	verifyPrefetch = 2000
	verifyAhead    = 8
)

// Verify recomputes the chain from ordinal 1 over the whole log and compares it with the ledger
// and its checkpoints. It reports the first problem; the error is for failures to read. Memory
// stays flat whatever the size of the log. It may run beside a Sealer: only what was sealed when
// it started is compared, the rest is counted as unsealed.
func Verify(ctx context.Context, store eventstore.Store, ledger *Ledger) (Report, error) {
	start := time.Now()
	var r Report
	var err error
	if r.Sealed, err = ledger.Tail(ctx); err != nil {
		return r, err
	}
	if cp, ok, err := ledger.LastCheckpoint(ctx); err != nil {
		return r, err
	} else if ok && cp.Ordinal <= r.Sealed.Ordinal {
		r.LastCheckpoint = &cp
	}
	upTo := r.Sealed.Ordinal

	nextSeal, stopSeals := iter.Pull2(prefetch(ctx, verifyPrefetch, func(ctx context.Context) iter.Seq2[Seal, error] {
		return ledger.Seals(ctx, 0, upTo)
	}))
	defer stopSeals()
	nextCP, stopCPs := iter.Pull2(ledger.Checkpoints(ctx, 0, upTo))
	defer stopCPs()
	cp, cpErr, cpOK := nextCP()

	var chain Chain
	// When the event sealed at some ordinal is not where it should be, the rest of the log is
	// searched for it: found, it was moved; not found, deleted.
	var missing *Seal
	var pending *Problem
	found := false
	for e, err := range prefetchAhead(ctx, verifyPrefetch, verifyAhead, func(ctx context.Context) iter.Seq2[eventstore.Event, error] {
		return readLog(ctx, store)
	}) {
		if err != nil {
			return r, fmt.Errorf("audit: verify: read the log: %w", err)
		}
		r.Events++
		if missing != nil {
			if e.ID == missing.EventID {
				found = true
				break
			}
			continue
		}
		ord, h := chain.Add(e)
		r.Head = h
		if ord > upTo {
			r.Unsealed++
			continue
		}
		s, err, ok := nextSeal()
		if err != nil {
			return r, err
		}
		if !ok || s.Ordinal != ord {
			r.Problem = ledgerHole(ord, e, s, ok)
			break
		}
		if e.ID == s.EventID && h == s.Chain {
			if e.GlobalPosition != s.Position {
				r.Problem = at(KindReordered, ord, e, s, fmt.Sprintf("sealed at position %d, now at position %d", s.Position, e.GlobalPosition))
				break
			}
			if cpErr != nil {
				return r, cpErr
			}
			if cpOK && cp.Ordinal == ord {
				if cp.Chain != h {
					r.Problem = at(KindLedger, ord, e, s, fmt.Sprintf("the ledger's chain %s matches the log but the checkpoint sealed at %s says %s: the ledger was rewritten",
						h, cp.SealedAt.Format(time.RFC3339), cp.Chain))
					break
				}
				r.CheckpointsVerified++
				cp, cpErr, cpOK = nextCP()
			}
			r.Verified++
			continue
		}
		if e.ID == s.EventID {
			r.Problem = at(KindChanged, ord, e, s, "its bytes differ from what was sealed (data, metadata, type, stream, version or time)")
			break
		}
		p, search, err := classify(ctx, ledger, ord, e, s)
		if err != nil {
			return r, err
		}
		if !search {
			r.Problem = p
			break
		}
		missing, pending = &s, p
	}
	if err := ctx.Err(); err != nil {
		return r, err
	}
	switch {
	case missing != nil && found:
		r.Problem = pending
	case missing != nil:
		r.Problem = gone(*missing, pending)
	case r.Problem == nil && chain.Ordinal() < upTo:
		s, err, ok := nextSeal()
		if err != nil {
			return r, err
		}
		if ok {
			r.Problem = gone(s, nil)
		}
	}
	r.Duration = time.Since(start)
	return r, nil
}

// readLog reads the whole log in order: in the store's bulk scan when it has one, which is the
// same events in fewer, larger reads.
func readLog(ctx context.Context, store eventstore.Store) iter.Seq2[eventstore.Event, error] {
	if sc, ok := store.(eventstore.Scanner); ok {
		return sc.ScanAll(ctx, 0)
	}
	return store.ReadAll(ctx, 0, eventstore.Filter{})
}

// classify names the problem when the log holds event e at ordinal ord where the ledger sealed
// another event, s. When the answer depends on whether s is further down the log, search is true
// and p is the problem if it is (e moved ahead of it).
func classify(ctx context.Context, ledger *Ledger, ord uint64, e eventstore.Event, s Seal) (p *Problem, search bool, err error) {
	known, ok, err := ledger.Find(ctx, e.ID)
	if err != nil {
		return nil, false, err
	}
	if !ok {
		if e.GlobalPosition == s.Position {
			// Either s was overwritten by e (changed), or s moved and e took its place (inserted).
			p := at(KindInserted, ord, e, Seal{}, fmt.Sprintf("not in the ledger; event %s was sealed at this place and is later in the log", s.EventID))
			return p, true, nil
		}
		return at(KindInserted, ord, e, Seal{}, fmt.Sprintf("not in the ledger, among sealed events (before %s, sealed at ordinal %d)", s.EventID, s.Ordinal)), false, nil
	}
	p = at(KindReordered, ord, e, known, fmt.Sprintf("sealed at ordinal %d, now at ordinal %d, where %s was sealed", known.Ordinal, ord, s.EventID))
	return p, true, nil
}

// gone is the problem when the event sealed as s is nowhere in the log after its place. instead
// was the guess if it had been found.
func gone(s Seal, instead *Problem) *Problem {
	if instead != nil && instead.Kind == KindInserted && instead.Position == s.Position {
		// Another event sits at s's position, and s is nowhere: s itself was overwritten.
		p := *instead
		p.Kind = KindChanged
		p.SealedOrdinal, p.SealedPosition = s.Ordinal, s.Position
		p.Detail = fmt.Sprintf("the event sealed here as %s now has id %s", s.EventID, instead.EventID)
		return &p
	}
	return &Problem{
		Kind: KindDeleted, Ordinal: s.Ordinal, EventID: s.EventID,
		SealedOrdinal: s.Ordinal, SealedPosition: s.Position,
		Detail: fmt.Sprintf("sealed at ordinal %d, position %d; no longer in the log", s.Ordinal, s.Position),
	}
}

func ledgerHole(ord uint64, e eventstore.Event, s Seal, ok bool) *Problem {
	detail := fmt.Sprintf("the ledger has no row for ordinal %d", ord)
	if ok {
		detail = fmt.Sprintf("the ledger jumps from ordinal %d to %d", ord-1, s.Ordinal)
	}
	return at(KindLedger, ord, e, Seal{}, detail)
}

func at(k Kind, ord uint64, e eventstore.Event, s Seal, detail string) *Problem {
	return &Problem{
		Kind: k, Ordinal: ord, EventID: e.ID,
		Position: e.GlobalPosition, StreamID: e.StreamID, StreamVersion: e.StreamVersion, Type: e.Type,
		SealedOrdinal: s.Ordinal, SealedPosition: s.Position, Detail: detail,
	}
}
