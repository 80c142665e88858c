package audit

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"sync"

	"github.com/lib/pq"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/idlog/idlog/migrations"
)

// Proofs read a few dozen node hashes, most of them recomputed from a few hundred hashes of the
// stored levels: readNodes reads each tile a proof needs once, whole, in one prepared query, and
// keeps in memory the tiles of the upper strata (levels 8 and above, a 256th of the tree or less)
// and the nodes computed from them, which every proof of a region shares. A stored node never
// changes (the tree stores complete subtrees only, and only appends), so a kept tile's hashes and
// a kept node stay right; a kept tile that is still growing is read again when a node past its
// end is asked. The tree size seen is kept too, so that a proof for a size already reached
// costs one query, for its leaf's tile, alone.

// cachedLevel: tiles and nodes of this level and above are kept (each node covers 256 leaves or
// more).
const cachedLevel = 8

// maxCachedNodes bounds the kept nodes: 8 MiB of hashes (about 20 MiB with the map's own room),
// the upper levels of a tree of 500 million leaves.
const maxCachedNodes = 1 << 18

// maxCachedTileBytes bounds the kept tiles of the upper strata: 16 MiB, all of them for a tree
// of about 130 million leaves.
const maxCachedTileBytes = 16 << 20

// tileKey names a row of audit_tree_tiles.
type tileKey struct {
	level uint
	index uint64
}

type proofCache struct {
	mu        sync.Mutex
	size      uint64
	nodes     map[compact.NodeID][]byte
	tiles     map[tileKey][]byte
	tileBytes int

	// stmts read tiles (tileOne one, tileMany several); prepared once: PostgreSQL plans them
	// once, and each read is one round trip instead of two.
	stmtMu sync.Mutex
	stmts  [2]*sql.Stmt
}

func (c *proofCache) knownSize() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.size
}

func (c *proofCache) sawSize(n uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.size = max(c.size, n)
}

// keepTile keeps an upper stratum's tile, or its longer version.
func (c *proofCache) keepTile(k tileKey, data []byte) {
	old, ok := c.tiles[k]
	if ok && len(old) >= len(data) {
		return
	}
	if c.tileBytes-len(old)+len(data) > maxCachedTileBytes {
		return
	}
	if c.tiles == nil {
		c.tiles = map[tileKey][]byte{}
	}
	c.tiles[k] = data
	c.tileBytes += len(data) - len(old)
}

// The tile queries read whole tiles: one by its key (a proof after warm-up reads its leaf's tile
// alone), or several, which PostgreSQL takes as arrays and SQLite one by one (it runs in process:
// a statement costs no round trip).
const (
	tileOne  = 0
	tileMany = 1
)

var tileQueries = [2]string{
	tileOne: `SELECT level, tile, hashes FROM audit_tree_tiles WHERE level = ? AND tile = ?`,
	tileMany: `SELECT t.level, t.tile, t.hashes FROM unnest(?::smallint[], ?::bigint[]) AS v(lv, tl)
		JOIN audit_tree_tiles t ON t.level = v.lv AND t.tile = v.tl`,
}

// tileStmt returns the prepared tile query which.
func (l *Ledger) tileStmt(ctx context.Context, which int) (*sql.Stmt, error) {
	c := &l.proofs
	c.stmtMu.Lock()
	defer c.stmtMu.Unlock()
	if c.stmts[which] != nil {
		return c.stmts[which], nil
	}
	st, err := l.db.PrepareContext(ctx, l.q(tileQueries[which]))
	if err != nil {
		return nil, err
	}
	c.stmts[which] = st
	return st, nil
}

// readTiles reads the tiles keys, whole, and hands each to fn with its bytes, which are the
// driver's until fn returns (most tiles read are used once: not copied); a tile not stored is
// left out.
func (l *Ledger) readTiles(ctx context.Context, keys []tileKey, fn func(tileKey, []byte)) error {
	scan := func(rows *sql.Rows) error {
		defer rows.Close()
		for rows.Next() {
			var level, index int64
			var data sql.RawBytes
			if err := rows.Scan(&level, &index, &data); err != nil {
				return err
			}
			fn(tileKey{uint(level), uint64(index)}, data)
		}
		return rows.Err()
	}
	if l.dialect == migrations.Postgres && len(keys) > 1 {
		st, err := l.tileStmt(ctx, tileMany)
		if err != nil {
			return err
		}
		levels := make([]int64, len(keys))
		idxs := make([]int64, len(keys))
		for i, k := range keys {
			levels[i], idxs[i] = int64(k.level), int64(k.index)
		}
		rows, err := st.QueryContext(ctx, pq.Array(levels), pq.Array(idxs))
		if err != nil {
			return err
		}
		return scan(rows)
	}
	st, err := l.tileStmt(ctx, tileOne)
	if err != nil {
		return err
	}
	for _, k := range keys {
		rows, err := st.QueryContext(ctx, int64(k.level), int64(k.index))
		if err != nil {
			return err
		}
		if err := scan(rows); err != nil {
			return err
		}
	}
	return nil
}

// readNodes reads the hashes of ids, in their order, with one query: a node of a stored level is
// its 32 bytes of its tile, a node of a level between is recomputed from the nodes of the stored
// level below it (one run of at most 128 hashes of one tile). With cache, the upper strata's
// tiles and nodes come from memory when they were read before, and are kept. A node that is not
// stored is an error: the tree is written with its ledger rows, so a hole means someone removed
// it.
func (l *Ledger) readNodes(ctx context.Context, ids []compact.NodeID, cache bool) ([][]byte, error) {
	return l.readNodesKeeping(ctx, ids, cache, 0, 0)
}

// readNodesKeeping is readNodes, which with cache also keeps the nodes ids[border:borderEnd]
// whatever their level: the nodes of the tree's right border, that make up a proof's ephemeral
// node, which every proof for that tree size shares. Without them, half the proofs at a size
// that is not a power of two read the tree's last leaf tile besides their own.
func (l *Ledger) readNodesKeeping(ctx context.Context, ids []compact.NodeID, cache bool, border, borderEnd int) ([][]byte, error) {
	out := make([][]byte, len(ids))
	c := &l.proofs
	// The tiles the nodes not kept are in, and how many bytes of each they need.
	ends := map[tileKey]uint64{}
	var order []tileKey
	c.mu.Lock()
	for i, id := range ids {
		if h, ok := c.nodes[id]; ok && cache {
			out[i] = h
			continue
		}
		base, first, count := storedSpan(id)
		k := tileKey{base, first / tileWidth}
		end, ok := ends[k]
		if !ok {
			order = append(order, k)
		}
		ends[k] = max(end, (first%tileWidth+count)*sha256.Size)
	}
	// The kept tiles that hold all their nodes wanted; the others are read.
	have := map[tileKey][]byte{}
	var need []tileKey
	for _, k := range order {
		if data, ok := c.tiles[k]; ok && cache && uint64(len(data)) >= ends[k] {
			have[k] = data
		} else {
			need = append(need, k)
		}
	}
	c.mu.Unlock()
	var computed []int
	// nodesOf computes the nodes of ids in tile k out of its bytes; unless owned, they are the
	// driver's, and a node that is a slice of them is copied.
	nodesOf := func(k tileKey, data []byte, owned bool) {
		for i, id := range ids {
			if out[i] != nil {
				continue
			}
			base, first, count := storedSpan(id)
			if (tileKey{base, first / tileWidth}) != k {
				continue
			}
			off := (first % tileWidth) * sha256.Size
			if uint64(len(data)) < off+count*sha256.Size {
				continue // missing: reported below
			}
			h := subtreeRoot(data[off : off+count*sha256.Size])
			if !owned && count == 1 {
				h = append([]byte(nil), h...)
			}
			out[i] = h
			computed = append(computed, i)
		}
	}
	for k, data := range have {
		nodesOf(k, data, true)
	}
	var keep []treeTile
	if len(need) > 0 {
		err := l.readTiles(ctx, need, func(k tileKey, data []byte) {
			if cache && k.level >= cachedLevel {
				data = append([]byte(nil), data...)
				keep = append(keep, treeTile{level: k.level, index: k.index, data: data})
				nodesOf(k, data, true)
				return
			}
			nodesOf(k, data, false)
		})
		if err != nil {
			return nil, l.err("read tree", err)
		}
	}
	for i, id := range ids {
		if out[i] == nil {
			return nil, l.err("read tree", fmt.Errorf("node (level %d, index %d) is missing", id.Level, id.Index))
		}
	}
	if !cache {
		return out, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range keep {
		c.keepTile(tileKey{t.level, t.index}, t.data)
	}
	for _, i := range computed {
		if id := ids[i]; (id.Level >= cachedLevel || border <= i && i < borderEnd) && len(c.nodes) < maxCachedNodes {
			if c.nodes == nil {
				c.nodes = map[compact.NodeID][]byte{}
			}
			c.nodes[id] = out[i]
		}
	}
	return out, nil
}

// storedSpan is where node id is, or what it is made of: count nodes of the stored level base,
// from index first, all in one tile.
func storedSpan(id compact.NodeID) (base uint, first, count uint64) {
	d := id.Level % storedLevels
	return id.Level - d, id.Index << d, 1 << d
}

// subtreeRoot is the root of the perfect subtree whose nodes of one level are run (a power of
// two, at most tileWidth/2, of 32-byte hashes, in order). A run of one is returned as it is,
// capped: the caller's bytes are never written.
func subtreeRoot(run []byte) []byte {
	n := len(run) / sha256.Size
	if n == 1 {
		return run[:sha256.Size:sha256.Size]
	}
	// The first level is hashed out of run into half its room, on the stack, and each level
	// after into the room of the one below: a proof hashes a few hundred nodes, and allocated
	// all of them.
	var buf [tileWidth / 4 * sha256.Size]byte
	var in [1 + 2*sha256.Size]byte
	in[0] = rfc6962.RFC6962NodeHashPrefix
	src := run
	for ; n > 1; n /= 2 {
		for j := range n / 2 {
			copy(in[1:], src[2*j*sha256.Size:(2*j+2)*sha256.Size])
			h := sha256.Sum256(in[:])
			copy(buf[j*sha256.Size:], h[:])
		}
		src = buf[:]
	}
	return append([]byte(nil), buf[:sha256.Size]...)
}
