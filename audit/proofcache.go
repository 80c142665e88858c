package audit

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strings"
	"sync"

	"github.com/transparency-dev/merkle/compact"
)

// Proofs read a few dozen node hashes out of tiles of up to 256: proofNodes reads just those 32
// bytes of each, all in one query, and keeps the nodes of the upper levels, which every proof of a
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

// proofNodes reads the stored hashes of ids, in their order, in one query; the upper levels' come
// from the cache when they were read before. A node that is not stored is an error.
func (l *Ledger) proofNodes(ctx context.Context, ids []compact.NodeID) ([][]byte, error) {
	out := make([][]byte, len(ids))
	c := &l.proofs
	var b strings.Builder
	args := make([]any, 0, 4*len(ids))
	c.mu.Lock()
	for i, id := range ids {
		if h, ok := c.nodes[id]; ok {
			out[i] = h
			continue
		}
		if len(args) > 0 {
			b.WriteString(" UNION ALL ")
		}
		// substr counts from 1, on SQLite's BLOB as on PostgreSQL's bytea.
		b.WriteString(`SELECT ?, substr(hashes, ?, 32) FROM audit_tree_tiles WHERE level = ? AND tile = ?`)
		args = append(args, int64(i), int64((id.Index%tileWidth)*sha256.Size+1), int64(id.Level), int64(id.Index/tileWidth))
	}
	c.mu.Unlock()
	if len(args) == 0 {
		return out, nil
	}
	query := b.String()
	if strings.Contains(query, "UNION") {
		query = "SELECT * FROM (" + query + ") AS nodes" // one result for PostgreSQL's planner
	}
	rows, err := l.db.QueryContext(ctx, l.q(query), args...)
	if err != nil {
		return nil, l.err("read tree", err)
	}
	defer rows.Close()
	for rows.Next() {
		var i int64
		var h []byte
		if err := rows.Scan(&i, &h); err != nil {
			return nil, l.err("read tree", err)
		}
		if i >= 0 && int(i) < len(out) && len(h) == sha256.Size {
			out[i] = h
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
		if id.Level >= cachedLevel && len(c.nodes) < maxCachedNodes {
			if c.nodes == nil {
				c.nodes = map[compact.NodeID][]byte{}
			}
			c.nodes[id] = out[i]
		}
	}
	return out, nil
}
