package audit

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strings"
	"sync"

	"github.com/lib/pq"
	"github.com/transparency-dev/merkle/compact"

	"github.com/idlog/idlog/migrations"
)

// Proofs read a few dozen node hashes out of tiles of up to 256: readNodes reads just the bytes
// it needs of each tile, all in one query, and keeps the nodes of the upper levels, which every proof of a
// region shares. A stored node never changes (the tree stores complete subtrees only, and only
// appends), so a kept one stays right; the tree size seen is kept too, so that a proof for a size
// already reached costs that one query alone.

// cachedLevel: nodes of this level and above are kept (each covers 256 leaves or more).
const cachedLevel = 8

// maxCachedNodes bounds the kept nodes: about 8 MiB, the upper levels of a tree of 500 million
// leaves.
const maxCachedNodes = 1 << 18

type proofCache struct {
	mu    sync.Mutex
	size  uint64
	nodes map[compact.NodeID][]byte
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

// readNodes reads the hashes of ids, in their order, in one query: a node of a stored level is
// its 32 bytes of its tile, a node of a level between is recomputed from the nodes of the stored
// level below it (one run of at most 128 hashes of one tile). With cache, the upper levels' nodes
// come from the cache when they were read before, and are kept. A node that is not stored is an
// error: the tree is written with its ledger rows, so a hole means someone removed it.
func (l *Ledger) readNodes(ctx context.Context, ids []compact.NodeID, cache bool) ([][]byte, error) {
	out := make([][]byte, len(ids))
	c := &l.proofs
	var b strings.Builder
	args := make([]any, 0, 5*len(ids))
	c.mu.Lock()
	for i, id := range ids {
		if h, ok := c.nodes[id]; ok && cache {
			out[i] = h
			continue
		}
		base, first, count := storedSpan(id)
		if len(args) > 0 {
			b.WriteString(" UNION ALL ")
		}
		// substr counts from 1, on SQLite's BLOB as on PostgreSQL's bytea.
		b.WriteString(`SELECT ?, substr(hashes, ?, ?) FROM audit_tree_tiles WHERE level = ? AND tile = ?`)
		args = append(args, int64(i), int64((first%tileWidth)*sha256.Size+1), int64(count*sha256.Size), int64(base), int64(first/tileWidth))
	}
	c.mu.Unlock()
	if len(args) == 0 {
		return out, nil
	}
	query := b.String()
	if strings.Contains(query, "UNION") {
		query = "SELECT * FROM (" + query + ") AS nodes"
	}
	if l.dialect == migrations.Postgres {
		// One statement whatever the number of nodes, the nodes as arrays: PostgreSQL plans a
		// join over them faster than a union of as many lookups.
		cols := make([][]int64, 5)
		for k, a := range args {
			cols[k%5] = append(cols[k%5], a.(int64))
		}
		query = `SELECT v.i, substr(t.hashes, v.o::int, v.c::int) FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::smallint[], $5::bigint[]) AS v(i, o, c, lv, tl)
			JOIN audit_tree_tiles t ON t.level = v.lv AND t.tile = v.tl`
		args = []any{pq.Array(cols[0]), pq.Array(cols[1]), pq.Array(cols[2]), pq.Array(cols[3]), pq.Array(cols[4])}
	}
	rows, err := l.db.QueryContext(ctx, l.q(query), args...)
	if err != nil {
		return nil, l.err("read tree", err)
	}
	defer rows.Close()
	for rows.Next() {
		var i int64
		var run []byte
		if err := rows.Scan(&i, &run); err != nil {
			return nil, l.err("read tree", err)
		}
		if i < 0 || int(i) >= len(out) {
			continue
		}
		if _, _, count := storedSpan(ids[i]); uint64(len(run)) == count*sha256.Size {
			out[i] = subtreeRoot(run)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, l.err("read tree", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, id := range ids {
		if out[i] == nil {
			return nil, l.err("read tree", fmt.Errorf("node (level %d, index %d) is missing", id.Level, id.Index))
		}
		if cache && id.Level >= cachedLevel && len(c.nodes) < maxCachedNodes {
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
// two of 32-byte hashes, in order).
func subtreeRoot(run []byte) []byte {
	hs := make([][]byte, 0, len(run)/sha256.Size)
	for off := 0; off < len(run); off += sha256.Size {
		hs = append(hs, run[off:off+sha256.Size:off+sha256.Size])
	}
	for len(hs) > 1 {
		for j := 0; j < len(hs)/2; j++ {
			hs[j] = hasher.HashChildren(hs[2*j], hs[2*j+1])
		}
		hs = hs[:len(hs)/2]
	}
	return hs[0]
}
