package audit

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"hash"
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

var rangeFactory = compact.RangeFactory{Hash: hashChildren}

// hashChildren is RFC 6962's node hash, SHA-256(0x01 || left || right), as hasher.HashChildren
// computes it, with one allocation instead of a new hash state per node: the sealer makes one
// node per event.
func hashChildren(l, r []byte) []byte {
	var buf [1 + 2*sha256.Size]byte
	buf[0] = rfc6962.RFC6962NodeHashPrefix
	copy(buf[1:], l)
	copy(buf[1+sha256.Size:], r)
	h := sha256.Sum256(buf[:])
	return h[:]
}

// LeafHash is the tree's leaf hash of an event's canonical bytes.
func LeafHash(canonical []byte) Hash {
	return Hash(sha256.Sum256(append([]byte{rfc6962.RFC6962LeafHashPrefix}, canonical...)))
}

// EmptyRoot is the root of the tree of no events: SHA-256 of nothing.
func EmptyRoot() Hash { return Hash(sha256.Sum256(nil)) }

// tileWidth is how many node hashes of one level one row of audit_tree_tiles holds: the nodes
// (level, tile*tileWidth) to (level, tile*tileWidth + tileWidth - 1), in order. A row per node
// made the tree cost as much to write as the ledger itself.
const tileWidth = 256

// storedLevels: only the levels 0, 8, 16, ... are stored, the bottom rows of the C2SP
// tlog-tiles' tiles of height 8; a node of the seven levels between is the root of at most 128
// nodes of the stored level below it, all in one tile, and is recomputed when read (readNodes).
// That halves what the sealer writes (about 32 bytes an event instead of 64) for a few hundred
// hashes a proof.
const storedLevels = 8

// treeTile is a row of audit_tree_tiles: whole node hashes, from the tile's first.
type treeTile struct {
	level uint
	index uint64
	data  []byte
}

// tree is the right border of the tree (a compact range from 0), and, when it is kept, the last
// tile of every level, with the tiles changed since they were last written.
type tree struct {
	rng *compact.Range
	h   hash.Hash
	// keep: the nodes are written (the sealer); a verifier only needs the roots.
	keep  bool
	last  map[uint]*treeTile
	dirty map[*treeTile]struct{}
	err   error
}

func newTree(keep bool) *tree {
	return &tree{rng: rangeFactory.NewEmptyRange(0), keep: keep, last: map[uint]*treeTile{}, dirty: map[*treeTile]struct{}{}}
}

func (t *tree) visit(id compact.NodeID, h []byte) {
	if !t.keep || id.Level%storedLevels != 0 {
		return
	}
	tile := id.Index / tileWidth
	cur := t.last[id.Level]
	if cur == nil || cur.index != tile {
		// A whole tile's room at once: its hashes are appended one by one.
		cur = &treeTile{level: id.Level, index: tile, data: make([]byte, 0, tileWidth*sha256.Size)}
		t.last[id.Level] = cur
	}
	if want := (id.Index % tileWidth) * sha256.Size; uint64(len(cur.data)) != want && t.err == nil {
		t.err = fmt.Errorf("audit: tree node (%d, %d) is not the next of its tile", id.Level, id.Index)
	}
	cur.data = append(cur.data, h...)
	t.dirty[cur] = struct{}{}
}

// pending returns the tiles to write and forgets them. It shares their bytes, which is safe: a
// tile's hashes are only ever appended after its end, and a restore caps them (treeSave).
func (t *tree) pending() []treeTile {
	out := make([]treeTile, 0, len(t.dirty))
	for tt := range t.dirty {
		out = append(out, treeTile{level: tt.level, index: tt.index, data: tt.data[:len(tt.data):len(tt.data)]})
	}
	clear(t.dirty)
	return out
}

// add appends the event whose canonical bytes are canonical.
func (t *tree) add(canonical []byte) {
	if t.h == nil {
		t.h = sha256.New()
	}
	t.h.Reset()
	t.h.Write([]byte{rfc6962.RFC6962LeafHashPrefix})
	t.h.Write(canonical)
	// Append keeps the slice: a new one each leaf.
	leaf := t.h.Sum(make([]byte, 0, sha256.Size))
	// Append fails only on a hash of the wrong size, which sha256 cannot make.
	_ = t.rng.Append(leaf, t.visit)
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
	var tile, n int64
	err := l.db.QueryRowContext(ctx, `SELECT tile, length(hashes) FROM audit_tree_tiles WHERE level = 0 ORDER BY tile DESC LIMIT 1`).Scan(&tile, &n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, l.err("read tree size", err)
	}
	return uint64(tile)*tileWidth + uint64(n)/sha256.Size, nil
}

// lastTiles reads the last, partial tile of every stored level of the tree of size leaves: what the
// sealer appends to.
func (l *Ledger) lastTiles(ctx context.Context, size uint64) (map[uint]*treeTile, error) {
	last := map[uint]*treeTile{}
	for level := uint(0); size>>level > 0; level += storedLevels {
		n := size >> level
		have := n % tileWidth
		if have == 0 {
			continue
		}
		var data []byte
		err := l.db.QueryRowContext(ctx, l.q(`SELECT hashes FROM audit_tree_tiles WHERE level = ? AND tile = ?`), int64(level), int64(n/tileWidth)).Scan(&data)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return nil, l.err("read tree", err)
		}
		if uint64(len(data)) < have*sha256.Size {
			return nil, l.err("read tree", fmt.Errorf("tile (level %d, %d) holds %d bytes, want %d", level, n/tileWidth, len(data), have*sha256.Size))
		}
		last[level] = &treeTile{level: level, index: n / tileWidth, data: data[:have*sha256.Size]}
	}
	return last, nil
}

// compactRange reads the right border of the stored tree at size.
func (l *Ledger) compactRange(ctx context.Context, size uint64) (*compact.Range, error) {
	hashes, err := l.readNodes(ctx, compact.RangeNodes(0, size, nil), false)
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
	if size <= l.proofs.knownSize() {
		return nil // the tree only grows: no need to ask again
	}
	n, err := l.TreeSize(ctx)
	if err != nil {
		return err
	}
	l.proofs.sawSize(n)
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
	// The leaf and the path in one query.
	leaf := compact.NewNodeID(0, ordinal-1)
	hashes, err := l.rehash(ctx, n, leaf)
	if err != nil {
		return InclusionProof{}, err
	}
	return InclusionProof{Ordinal: ordinal, TreeSize: size, LeafHash: hashes[0], Hashes: hashes[1:]}, nil
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

// rehash reads the nodes of a proof and returns its hashes, after the hashes of the extra nodes.
func (l *Ledger) rehash(ctx context.Context, n proof.Nodes, extra ...compact.NodeID) ([]Hash, error) {
	_, begin, end := n.Ephem()
	hashes, err := l.readNodesKeeping(ctx, append(extra, n.IDs...), true, len(extra)+begin, len(extra)+end)
	if err != nil {
		return nil, err
	}
	path, err := n.Rehash(hashes[len(extra):], hasher.HashChildren)
	if err != nil {
		return nil, l.err("build proof", err)
	}
	out := make([]Hash, 0, len(extra)+len(path))
	for _, h := range hashes[:len(extra)] {
		out = append(out, Hash(h))
	}
	for _, h := range path {
		out = append(out, Hash(h))
	}
	return out, nil
}

// insertTiles writes tree tiles in tx, replacing the rows of tiles that grew.
func (l *Ledger) insertTiles(ctx context.Context, tx *sqlx.Tx, tiles []treeTile) error {
	if l.dialect == migrations.Postgres {
		// All the tiles' hashes go as one bytea, each tile a slice of it: an array of bytea
		// goes as text, every element quoted and escaped, and PostgreSQL took twice as long
		// to parse it as to store the rows.
		levels := make([]int64, len(tiles))
		idxs := make([]int64, len(tiles))
		offs := make([]int64, len(tiles))
		lens := make([]int64, len(tiles))
		n := 0
		for i := range tiles {
			n += len(tiles[i].data)
		}
		all := make([]byte, 0, n)
		for i := range tiles {
			levels[i], idxs[i], offs[i], lens[i] = int64(tiles[i].level), int64(tiles[i].index), int64(len(all)+1), int64(len(tiles[i].data))
			all = append(all, tiles[i].data...)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO audit_tree_tiles (level, tile, hashes)
			SELECT v.lv, v.tl, substr(src.hashes, v.o::int, v.n::int)
			FROM unnest($1::smallint[], $2::bigint[], $3::bigint[], $4::bigint[]) AS v(lv, tl, o, n), (SELECT $5::bytea) AS src(hashes)
			ON CONFLICT (level, tile) DO UPDATE SET hashes = excluded.hashes`, pq.Array(levels), pq.Array(idxs), pq.Array(offs), pq.Array(lens), all)
		return err
	}
	for len(tiles) > 0 {
		n := min(len(tiles), 300) // 3 bind variables a row
		var b strings.Builder
		b.WriteString(`INSERT INTO audit_tree_tiles (level, tile, hashes) VALUES `)
		args := make([]any, 0, 3*n)
		for i := range tiles[:n] {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString("(?,?,?)")
			args = append(args, int64(tiles[i].level), int64(tiles[i].index), tiles[i].data)
		}
		b.WriteString(` ON CONFLICT (level, tile) DO UPDATE SET hashes = excluded.hashes`)
		if _, err := tx.ExecContext(ctx, b.String(), args...); err != nil {
			return err
		}
		tiles = tiles[n:]
	}
	return nil
}

// treeSave is a tree as it was, to go back to when a write fails.
type treeSave struct {
	end    uint64
	hashes [][]byte
	last   map[uint]treeTile
	t      *tree
}

func (t *tree) save() treeSave {
	sv := treeSave{end: t.rng.End(), hashes: append([][]byte(nil), t.rng.Hashes()...), last: make(map[uint]treeTile, len(t.last)), t: t}
	for l, tt := range t.last {
		sv.last[l] = treeTile{level: tt.level, index: tt.index, data: tt.data[:len(tt.data):len(tt.data)]}
	}
	return sv
}

func (s treeSave) restore() *tree {
	// NewRange accepts what Hashes returned for the same range.
	r, _ := rangeFactory.NewRange(0, s.end, s.hashes)
	s.t.rng, s.t.err = r, nil
	clear(s.t.last)
	for l, tt := range s.last {
		s.t.last[l] = &treeTile{level: tt.level, index: tt.index, data: tt.data}
	}
	clear(s.t.dirty)
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
	last, err := l.lastTiles(ctx, size)
	if err != nil {
		return nil, err
	}
	t := newTree(true)
	t.rng, t.last = rng, last
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
		if ord%treeBackfillBatch == 0 || ord == sealed {
			if t.err != nil {
				return nil, t.err
			}
			if err := l.writeTiles(ctx, t.pending()); err != nil {
				return nil, err
			}
		}
		if ord == sealed {
			return t, nil
		}
	}
	return nil, fmt.Errorf("audit: backfill the tree: the log holds %d events, the ledger %d seals", ord, sealed)
}

// writeTiles writes tree tiles alone (a backfill), under the sealer's lease.
func (l *Ledger) writeTiles(ctx context.Context, tiles []treeTile) error {
	tx, err := l.db.BeginTxx(ctx, nil)
	if err != nil {
		return l.err("begin", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after commit
	if err := lease.Check(ctx, tx, l.dialect); err != nil {
		return err
	}
	if err := l.insertTiles(ctx, tx, tiles); err != nil {
		return l.err("write tree", err)
	}
	if err := tx.Commit(); err != nil {
		return l.err("commit", err)
	}
	return nil
}
