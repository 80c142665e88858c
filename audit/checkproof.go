package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/transparency-dev/merkle/proof"
)

// InclusionProof is the proof that the event at Ordinal is leaf Ordinal-1 of the tree of TreeSize
// events: the RFC 9162 audit path, from the leaf's sibling up. LeafHash is for convenience; a
// checker recomputes it from the event.
type InclusionProof struct {
	Ordinal  uint64 `json:"ordinal"`
	TreeSize uint64 `json:"tree_size"`
	LeafHash Hash   `json:"leaf_hash"`
	Hashes   []Hash `json:"hashes"`
}

// ConsistencyProof is the proof that the tree of To events extends the tree of From events
// (RFC 9162 section 2.1.4).
type ConsistencyProof struct {
	From   uint64 `json:"from"`
	To     uint64 `json:"to"`
	Hashes []Hash `json:"hashes"`
}

// ErrProofFailed: a proof does not hold for the checkpoint and event given.
var ErrProofFailed = errors.New("audit: the proof does not hold")

// CheckInclusion needs no database: it checks that checkpoint (a signed note) is signed by the
// audit key vkey, and that the event of line (one line of an export) is in the tree the checkpoint
// signed, by p. It returns the signed tree head. A bad signature is ErrCheckpointSignature; an
// event or proof that does not match is ErrProofFailed.
func CheckInclusion(checkpoint []byte, vkey string, line []byte, p InclusionProof) (TreeHead, error) {
	head, err := OpenCheckpoint(checkpoint, vkey)
	if err != nil {
		return TreeHead{}, err
	}
	var l Line
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		return head, fmt.Errorf("audit: the event is not an export line: %w", err)
	}
	var compact bytes.Buffer
	e, err := eventOf(&l, &compact)
	if err != nil {
		return head, fmt.Errorf("audit: the event is not an export line: %w", err)
	}
	switch {
	case l.Ordinal != p.Ordinal:
		return head, fmt.Errorf("%w: the event is at ordinal %d, the proof is for ordinal %d", ErrProofFailed, l.Ordinal, p.Ordinal)
	case p.TreeSize != head.Size:
		return head, fmt.Errorf("%w: the proof is for a tree of %d events, the checkpoint signed %d", ErrProofFailed, p.TreeSize, head.Size)
	case l.Ordinal == 0 || l.Ordinal > head.Size:
		return head, fmt.Errorf("%w: ordinal %d is not in a tree of %d events", ErrProofFailed, l.Ordinal, head.Size)
	}
	leaf := LeafHash(AppendCanonical(nil, l.Ordinal, e))
	if err := proof.VerifyInclusion(hasher, l.Ordinal-1, head.Size, leaf[:], hashSlices(p.Hashes), head.Root[:]); err != nil {
		return head, fmt.Errorf("%w: %v", ErrProofFailed, err)
	}
	return head, nil
}

// CheckConsistency needs no database: it checks that both checkpoints are signed by vkey and that
// the later one extends the earlier, by p. It returns the two tree heads, smaller first.
func CheckConsistency(older, newer []byte, vkey string, p ConsistencyProof) (TreeHead, TreeHead, error) {
	a, err := OpenCheckpoint(older, vkey)
	if err != nil {
		return a, TreeHead{}, err
	}
	b, err := OpenCheckpoint(newer, vkey)
	if err != nil {
		return a, b, err
	}
	if a.Size > b.Size {
		a, b = b, a
	}
	if p.From != a.Size || p.To != b.Size {
		return a, b, fmt.Errorf("%w: the proof is from %d to %d, the checkpoints are of %d and %d events", ErrProofFailed, p.From, p.To, a.Size, b.Size)
	}
	if err := proof.VerifyConsistency(hasher, a.Size, b.Size, hashSlices(p.Hashes), a.Root[:], b.Root[:]); err != nil {
		return a, b, fmt.Errorf("%w: %v", ErrProofFailed, err)
	}
	return a, b, nil
}

func hashSlices(hs []Hash) [][]byte {
	out := make([][]byte, len(hs))
	for i := range hs {
		out[i] = hs[i][:]
	}
	return out
}
