package audit

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/idlog/idlog/eventstore"
)

// CheckpointProblem is the first signed checkpoint the log no longer matches. The events that
// differ begin among ordinals From to To: the checkpoint before it (of size From-1) still
// matches, this one (of size To) does not. When From == To, EventID names the event.
type CheckpointProblem struct {
	Checkpoint TreeHead `json:"checkpoint"`
	From       uint64   `json:"from"`
	To         uint64   `json:"to"`
	// EventID, Position, StreamID and Type are the event the log holds now at From, if any.
	EventID  uuid.UUID `json:"event_id,omitzero"`
	Position uint64    `json:"position,omitempty"`
	StreamID string    `json:"stream_id,omitempty"`
	Type     string    `json:"type,omitempty"`
	Detail   string    `json:"detail"`
}

func (p *CheckpointProblem) String() string {
	if p.From == p.To {
		return fmt.Sprintf("event %s at ordinal %d: %s", p.EventID, p.From, p.Detail)
	}
	return fmt.Sprintf("ordinals %d to %d (the event at %d is %s): %s", p.From, p.To, p.From, p.EventID, p.Detail)
}

// CheckpointReport is what VerifyCheckpoints found.
type CheckpointReport struct {
	// Checkpoints is how many signed checkpoints were compared, Matched how many the log matches.
	Checkpoints int `json:"checkpoints"`
	Matched     int `json:"matched"`
	// Covered is the largest tree size the matched checkpoints vouch for.
	Covered uint64 `json:"covered"`
	// Events is how many events of the log were read.
	Events uint64 `json:"events"`
	// Root is the root of the tree over the events read.
	Root     Hash               `json:"root"`
	Problem  *CheckpointProblem `json:"problem,omitempty"`
	Duration time.Duration      `json:"duration_ns"`
}

// OK reports whether the log matches every checkpoint.
func (r CheckpointReport) OK() bool { return r.Problem == nil }

// VerifyCheckpoints rebuilds the Merkle tree from the log alone and compares its root at each
// checkpoint's size with the signed root: it trusts nothing the database holds besides the events,
// so a log rewritten together with its ledger and tree (and resealed) is caught, as long as an
// earlier signed checkpoint was kept outside. heads must have been opened (OpenCheckpoint) with the
// audit key. Two checkpoints of one size with different roots are a problem of their own: the log
// showed two histories.
func VerifyCheckpoints(ctx context.Context, store eventstore.Store, heads []TreeHead) (CheckpointReport, error) {
	start := time.Now()
	heads = slices.Clone(heads)
	slices.SortStableFunc(heads, func(a, b TreeHead) int { return cmp.Compare(a.Size, b.Size) })
	r := CheckpointReport{Checkpoints: len(heads)}
	for i := 1; i < len(heads); i++ {
		if a, b := heads[i-1], heads[i]; a.Size == b.Size && a.Root != b.Root {
			r.Problem = &CheckpointProblem{Checkpoint: b, From: b.Size, To: b.Size,
				Detail: fmt.Sprintf("two signed checkpoints of size %d have different roots (%s at %s, %s at %s): the log was forked",
					b.Size, a.Root, a.Time.Format(time.RFC3339), b.Root, b.Time.Format(time.RFC3339))}
			return r, nil
		}
	}
	t := newTree(false)
	var buf []byte
	var prev uint64 // the size of the last checkpoint matched
	// The event at prev+1, kept to name it when the next checkpoint fails.
	var first eventstore.Event
	check := func() bool {
		for len(heads) > 0 && heads[0].Size == t.size() {
			h := heads[0]
			if root := t.root(); root != h.Root {
				r.Problem = &CheckpointProblem{Checkpoint: h, From: prev + 1, To: h.Size,
					EventID: first.ID, Position: first.GlobalPosition, StreamID: first.StreamID, Type: first.Type,
					Detail: fmt.Sprintf("the log's first %d events have root %s, the checkpoint signed at %s says %s: %s was changed, deleted, inserted or moved",
						h.Size, root, h.Time.Format(time.RFC3339), h.Root, which(prev+1, h.Size))}
				if h.Size == 0 {
					r.Problem.From = 0
				}
				return false
			}
			r.Matched++
			r.Covered, prev, first = h.Size, h.Size, eventstore.Event{}
			heads = heads[1:]
		}
		return true
	}
	if !check() {
		return r, nil
	}
	for e, err := range readLog(ctx, store) {
		if err != nil {
			return r, fmt.Errorf("audit: verify against checkpoints: read the log: %w", err)
		}
		if len(heads) == 0 {
			break // events after the last checkpoint: nothing to compare them with
		}
		r.Events++
		if r.Events == prev+1 {
			first = e
		}
		buf = AppendCanonical(buf[:0], r.Events, e)
		t.add(buf)
		if !check() {
			break
		}
	}
	if err := ctx.Err(); err != nil {
		return r, err
	}
	r.Root = t.root()
	if r.Problem == nil && len(heads) > 0 {
		h := heads[0]
		r.Problem = &CheckpointProblem{Checkpoint: h, From: prev + 1, To: h.Size,
			EventID: first.ID, Position: first.GlobalPosition, StreamID: first.StreamID, Type: first.Type,
			Detail: fmt.Sprintf("the log holds %d events, the checkpoint signed at %s covers %d: %s was deleted",
				r.Events, h.Time.Format(time.RFC3339), h.Size, which(prev+1, h.Size))}
	}
	r.Duration = time.Since(start)
	return r, nil
}

func which(from, to uint64) string {
	if from == to {
		return fmt.Sprintf("the event at ordinal %d", from)
	}
	return fmt.Sprintf("an event among ordinals %d to %d", from, to)
}
