package audit

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/idlog/idlog/lease"
	"github.com/idlog/idlog/migrations"
)

// The Merkle tree (RFC 6962 / RFC 9162, SHA-256) over the log: leaf i (from 0) is the event at
// ordinal i+1, and its leaf hash is SHA-256(0x00 || canonical bytes), the same canonical bytes the
// chain hashes (AppendCanonical). Unlike the chain, the tree gives short proofs: that an event is in
// the log a checkpoint signed (inclusion), and that a later checkpoint extends an earlier one
// (consistency), each of about log2(size) hashes.

// ErrTreeSize: a proof was asked for a tree size (or leaf) the sealed tree does not reach.
var ErrTreeSize = errors.New("audit: tree size out of range")

var hasher = rfc6962.DefaultHasher

var rangeFactory = compact.RangeFactory{Hash: hasher.HashChildren}

// LeafHash is the tree's leaf hash of an event's canonical bytes.
func LeafHash(canonical []byte) Hash {
	return Hash(sha256.Sum256(append([]byte{rfc6962.RFC6962LeafHashPrefix}, canonical...)))
}

// EmptyRoot is the root of the tree of no events: SHA-256 of nothing.
func EmptyRoot() Hash { return Hash(sha256.Sum256(nil)) }

// treeNode is a node of a perfect subtree: leaves are level 0.
type treeNode struct {
	level uint
	index uint64
	hash  Hash
}

// tree is the right border of the tree (a compact range from 0), and the nodes made since they
// were last written.
type tree struct {
	rng     *compact.Range
	pending []treeNode
	leafBuf []byte
}

func (t *tree) visit(id compact.NodeID, h []byte) {
	t.pending = append(t.pending, treeNode{level: id.Level, index: id.Index, hash: Hash(h)})
}

// add appends the event whose canonical bytes are canonical.
func (t *tree) add(canonical []byte) {
	t.leafBuf = append(append(t.leafBuf[:0], rfc6962.RFC6962LeafHashPrefix), canonical...)
	leaf := sha256.Sum256(t.leafBuf)
	if cap(t.leafBuf) > 1<<20 {
		t.leafBuf = nil
	}
	// Append fails only on a hash of the wrong size, which sha256.Sum256 cannot make.
	_ = t.rng.Append(leaf[:], t.visit)
}

func (t *tree) size() uint64 { return t.rng.End() }

// root is the tree's root hash now.
func (t *tree) root() Hash {
	r, err := t.rng.GetRootHash(nil)
	if err != nil || r == nil {
		return EmptyRoot()
	}
	return Hash(r)
}

// rootOf computes the root of a compact range from 0.
func rootOf(r *compact.Range) Hash {
	h, err := r.GetRootHash(nil)
	if err != nil || h == nil {
		return EmptyRoot()
	}
	return Hash(h)
}

// TreeSize is how many leaves the stored tree holds.
func (l *Ledger) TreeSize(ctx context.Context) (uint64, error) {
	var n int64
	if err := l.db.QueryRowContext(ctx, `SELECT coalesce(max(idx) + 1, 0) FROM audit_tree_nodes WHERE level = 0`).Scan(&n); err != nil {
		return 0, l.err("read tree size", err)
	}
	return uint64(n), nil
}

// nodes reads the stored hashes of ids, in their order. A node that is not stored is an error:
// the tree is written with its ledger rows, so a hole means someone removed it.
func (l *Ledger) nodes(ctx context.Context, ids []compact.NodeID) ([][]byte, error) {
	out := make([][]byte, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	at := make(map[compact.NodeID]int, len(ids))
	var b strings.Builder
	b.WriteString(`SELECT level, idx, hash FROM audit_tree_nodes WHERE `)
	args := make([]any, 0, 2*len(ids))
	for i, id := range ids {
		if i > 0 {
			b.WriteString(" OR ")
		}
		b.WriteString("(level = ? AND idx = ?)")
		args = append(args, int64(id.Level), int64(id.Index))
		at[id] = i
	}
	rows, err := l.db.QueryContext(ctx, l.q(b.String()), args...)
	if err != nil {
		return nil, l.err("read tree nodes", err)
	}
	defer rows.Close()
	for rows.Next() {
		var level, idx int64
		var h []byte
		if err := rows.Scan(&level, &idx, &h); err != nil {
			return nil, l.err("read tree nodes", err)
		}
		if len(h) != sha256.Size {
			return nil, l.err("read tree nodes", fmt.Errorf("node (%d, %d) holds %d bytes, want 32", level, idx, len(h)))
		}
		if i, ok := at[compact.NewNodeID(uint(level), uint64(idx))]; ok {
			out[i] = h
		}
	}
	if err := rows.Err(); err != nil {
		return nil, l.err("read tree nodes", err)
	}
	for i, h := range out {
		if h == nil {
			return nil, l.err("read tree nodes", fmt.Errorf("node (level %d, index %d) is missing", ids[i].Level, ids[i].Index))
		}
	}
	return out, nil
}

// compactRange reads the right border of the stored tree at size.
func (l *Ledger) compactRange(ctx context.Context, size uint64) (*compact.Range, error) {
	hashes, err := l.nodes(ctx, compact.RangeNodes(0, size, nil))
	if err != nil {
		return nil, err
	}
	r, err := rangeFactory.NewRange(0, size, hashes)
	if err != nil {
		return nil, l.err("read tree", err)
	}
	return r, nil
}

// Root is the root hash of the stored tree at size, which must not exceed TreeSize.
func (l *Ledger) Root(ctx context.Context, size uint64) (Hash, error) {
	if err := l.checkSize(ctx, size); err != nil {
		return Hash{}, err
	}
	r, err := l.compactRange(ctx, size)
	if err != nil {
		return Hash{}, err
	}
	return rootOf(r), nil
}

func (l *Ledger) checkSize(ctx context.Context, size uint64) error {
	n, err := l.TreeSize(ctx)
	if err != nil {
		return err
	}
	if size > n {
		return fmt.Errorf("%w: size %d, the tree holds %d leaves", ErrTreeSize, size, n)
	}
	return nil
}

// InclusionProof returns the proof that the event at ordinal is leaf ordinal-1 of the tree of size
// leaves, as RFC 9162 section 2.1.3 defines it.
func (l *Ledger) InclusionProof(ctx context.Context, ordinal, size uint64) (InclusionProof, error) {
	if ordinal == 0 || ordinal > size {
		return InclusionProof{}, fmt.Errorf("%w: ordinal %d is not in a tree of size %d", ErrTreeSize, ordinal, size)
	}
	if err := l.checkSize(ctx, size); err != nil {
		return InclusionProof{}, err
	}
	n, err := proof.Inclusion(ordinal-1, size)
	if err != nil {
		return InclusionProof{}, fmt.Errorf("%w: %v", ErrTreeSize, err)
	}
	leaf, err := l.nodes(ctx, []compact.NodeID{compact.NewNodeID(0, ordinal-1)})
	if err != nil {
		return InclusionProof{}, err
	}
	hashes, err := l.rehash(ctx, n)
	if err != nil {
		return InclusionProof{}, err
	}
	return InclusionProof{Ordinal: ordinal, TreeSize: size, LeafHash: Hash(leaf[0]), Hashes: hashes}, nil
}

// ConsistencyProof returns the proof that the tree of size2 leaves extends the tree of size1, as
// RFC 9162 section 2.1.4 defines it.
func (l *Ledger) ConsistencyProof(ctx context.Context, size1, size2 uint64) (ConsistencyProof, error) {
	if size1 > size2 {
		return ConsistencyProof{}, fmt.Errorf("%w: size %d is larger than size %d", ErrTreeSize, size1, size2)
	}
	if err := l.checkSize(ctx, size2); err != nil {
		return ConsistencyProof{}, err
	}
	n, err := proof.Consistency(size1, size2)
	if err != nil {
		return ConsistencyProof{}, fmt.Errorf("%w: %v", ErrTreeSize, err)
	}
	hashes, err := l.rehash(ctx, n)
	if err != nil {
		return ConsistencyProof{}, err
	}
	if hashes == nil {
		hashes = []Hash{}
	}
	return ConsistencyProof{From: size1, To: size2, Hashes: hashes}, nil
}

func (l *Ledger) rehash(ctx context.Context, n proof.Nodes) ([]Hash, error) {
	hashes, err := l.nodes(ctx, n.IDs)
	if err != nil {
		return nil, err
	}
	hashes, err = n.Rehash(hashes, hasher.HashChildren)
	if err != nil {
		return nil, l.err("build proof", err)
	}
	out := make([]Hash, len(hashes))
	for i, h := range hashes {
		out[i] = Hash(h)
	}
	return out, nil
}

// insertNodes writes tree nodes in tx.
func (l *Ledger) insertNodes(ctx context.Context, tx *sqlx.Tx, nodes []treeNode) error {
	if l.dialect == migrations.Postgres {
		levels := make([]int64, len(nodes))
		idxs := make([]int64, len(nodes))
		hashes := make([][]byte, len(nodes))
		for i := range nodes {
			n := &nodes[i]
			levels[i], idxs[i], hashes[i] = int64(n.level), int64(n.index), n.hash[:]
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO audit_tree_nodes (level, idx, hash)
			SELECT * FROM unnest($1::smallint[], $2::bigint[], $3::bytea[])`, pq.Array(levels), pq.Array(idxs), pq.Array(hashes))
		return err
	}
	const perInsert = 900 // 3 bind variables a row
	for len(nodes) > 0 {
		n := min(len(nodes), perInsert)
		var b strings.Builder
		b.WriteString(`INSERT INTO audit_tree_nodes (level, idx, hash) VALUES `)
		args := make([]any, 0, 3*n)
		for i := range nodes[:n] {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString("(?,?,?)")
			args = append(args, int64(nodes[i].level), int64(nodes[i].index), nodes[i].hash[:])
		}
		if _, err := tx.ExecContext(ctx, b.String(), args...); err != nil {
			return err
		}
		nodes = nodes[n:]
	}
	return nil
}

// treeSave is a tree as it was, to go back to when a write fails.
type treeSave struct {
	end    uint64
	hashes [][]byte
	t      *tree
}

func (t *tree) save() treeSave {
	return treeSave{end: t.rng.End(), hashes: append([][]byte(nil), t.rng.Hashes()...), t: t}
}

func (s treeSave) restore() *tree {
	// NewRange accepts what Hashes returned for the same range.
	r, _ := rangeFactory.NewRange(0, s.end, s.hashes)
	s.t.rng, s.t.pending = r, s.t.pending[:0]
	return s.t
}

// treeBackfillBatch is how many leaves one transaction of a backfill writes.
const treeBackfillBatch = 5000

// loadTree resumes the tree at the ledger's tail. A ledger sealed before the tree existed
// (migration 00120) has a shorter tree: its leaves are read from the log and written first.
func (s *Sealer) loadTree(ctx context.Context, sealed uint64) (*tree, error) {
	l := s.o.Ledger
	size, err := l.TreeSize(ctx)
	if err != nil {
		return nil, err
	}
	if size > sealed {
		return nil, fmt.Errorf("audit: the tree holds %d leaves but the ledger only %d seals: the ledger was cut (verify against a checkpoint)", size, sealed)
	}
	rng, err := l.compactRange(ctx, size)
	if err != nil {
		return nil, err
	}
	t := &tree{rng: rng}
	if size == sealed {
		return t, nil
	}
	var buf []byte
	var ord uint64
	for e, err := range readLog(ctx, s.o.Store) {
		if err != nil {
			return nil, fmt.Errorf("audit: backfill the tree: read the log: %w", err)
		}
		ord++
		if ord <= size {
			continue
		}
		buf = AppendCanonical(buf[:0], ord, e)
		t.add(buf)
		if len(t.pending) >= 2*treeBackfillBatch || ord == sealed {
			if err := l.writeNodes(ctx, t.pending); err != nil {
				return nil, err
			}
			t.pending = t.pending[:0]
		}
		if ord == sealed {
			return t, nil
		}
	}
	return nil, fmt.Errorf("audit: backfill the tree: the log holds %d events, the ledger %d seals", ord, sealed)
}

// writeNodes writes tree nodes alone (a backfill), under the sealer's lease.
func (l *Ledger) writeNodes(ctx context.Context, nodes []treeNode) error {
	tx, err := l.db.BeginTxx(ctx, nil)
	if err != nil {
		return l.err("begin", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after commit
	if err := lease.Check(ctx, tx, l.dialect); err != nil {
		return err
	}
	if err := l.insertNodes(ctx, tx, nodes); err != nil {
		return l.err("insert tree nodes", err)
	}
	if err := tx.Commit(); err != nil {
		return l.err("commit", err)
	}
	return nil
}
