package audit

import (
	"context"
	"encoding/binary"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
)

// SealChainOnly makes s seal without the Merkle tree, as the sealer did before it had one: the
// reference of the sealing benchmark.
func SealChainOnly(s *Sealer) { s.chainOnly = true }

// BuildTree writes a tree of n leaves straight into l's tiles, with no events and no ledger rows
// (leaf i is the leaf hash of i's 8 bytes, big-endian), and returns its root: the tree of the
// proof benchmark, which serves proofs from the tiles alone.
func BuildTree(ctx context.Context, l *Ledger, n uint64) (Hash, error) {
	t := newTree(true)
	var buf [8]byte
	for i := range n {
		binary.BigEndian.PutUint64(buf[:], i)
		t.add(buf[:])
		if (i+1)%(1<<16) == 0 || i+1 == n {
			if t.err != nil {
				return Hash{}, t.err
			}
			if err := l.writeTiles(ctx, t.pending()); err != nil {
				return Hash{}, err
			}
		}
	}
	return t.root(), nil
}

// InclusionProofUncached is the inclusion proof with nothing kept between proofs: the tree size
// asked each time, every node read. The proof benchmark's reference.
func InclusionProofUncached(ctx context.Context, l *Ledger, ordinal, size uint64) ([]Hash, error) {
	if _, err := l.TreeSize(ctx); err != nil {
		return nil, err
	}
	n, err := proof.Inclusion(ordinal-1, size)
	if err != nil {
		return nil, err
	}
	hashes, err := l.readNodes(ctx, append([]compact.NodeID{compact.NewNodeID(0, ordinal-1)}, n.IDs...), false)
	if err != nil {
		return nil, err
	}
	if hashes, err = n.Rehash(hashes[1:], hasher.HashChildren); err != nil {
		return nil, err
	}
	out := make([]Hash, len(hashes))
	for i, h := range hashes {
		out[i] = Hash(h)
	}
	return out, nil
}
