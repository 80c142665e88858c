package audit_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/idlog/idlog/audit"
	"github.com/idlog/idlog/eventstore"
)

// naiveRoot is RFC 6962's Merkle Tree Hash, written out as the RFC defines it (section 2.1),
// independent of the compact ranges the sealer keeps.
func naiveRoot(leaves []audit.Hash) audit.Hash {
	switch len(leaves) {
	case 0:
		return audit.Hash(sha256.Sum256(nil))
	case 1:
		return leaves[0]
	}
	k := 1
	for k*2 < len(leaves) {
		k *= 2
	}
	l, r := naiveRoot(leaves[:k]), naiveRoot(leaves[k:])
	return audit.Hash(sha256.Sum256(append(append([]byte{1}, l[:]...), r[:]...)))
}

// leavesOf computes the leaf hashes of the log from its events, as an auditor would.
func leavesOf(log []eventstore.Event) []audit.Hash {
	out := make([]audit.Hash, len(log))
	for i, e := range log {
		out[i] = audit.LeafHash(audit.AppendCanonical(nil, uint64(i+1), e))
	}
	return out
}

func newAuditKey(t testing.TB, name string) (note.Signer, string) {
	t.Helper()
	skey, vkey, err := audit.NewAuditKey(name)
	if err != nil {
		t.Fatal(err)
	}
	s, v, err := audit.ParseAuditKey([]byte(skey + "\n" + vkey + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	return s, v
}

func sealWith(t testing.TB, e *env, o audit.SealerOptions) audit.Seal {
	t.Helper()
	tail, err := newSealer(t, e, o).CatchUp(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return tail
}

// checkTree checks the stored tree against the log: every root, every inclusion proof and every
// consistency proof, verified with the library's RFC 9162 verifier against naive roots.
func checkTree(t *testing.T, e *env, log []eventstore.Event) {
	t.Helper()
	ctx := context.Background()
	leaves := leavesOf(log)
	n := uint64(len(leaves))
	if size, err := e.ledger.TreeSize(ctx); err != nil || size != n {
		t.Fatalf("tree size %d, %v; want %d", size, err, n)
	}
	roots := make([]audit.Hash, n+1)
	for size := uint64(0); size <= n; size++ {
		roots[size] = naiveRoot(leaves[:size])
		if got, err := e.ledger.Root(ctx, size); err != nil || got != roots[size] {
			t.Fatalf("root at %d: %s, %v; want %s", size, got, err, roots[size])
		}
	}
	h := rfc6962.DefaultHasher
	for size := uint64(1); size <= n; size++ {
		for ord := uint64(1); ord <= size; ord++ {
			p, err := e.ledger.InclusionProof(ctx, ord, size)
			if err != nil {
				t.Fatal(err)
			}
			if p.LeafHash != leaves[ord-1] || p.Ordinal != ord || p.TreeSize != size {
				t.Fatalf("proof of %d in %d: %+v, leaf %s", ord, size, p, leaves[ord-1])
			}
			if err := proof.VerifyInclusion(h, ord-1, size, leaves[ord-1][:], hashes(p.Hashes), roots[size][:]); err != nil {
				t.Fatalf("inclusion of %d in %d: %v", ord, size, err)
			}
			// The same proof does not hold for another leaf.
			other := leaves[(ord)%size]
			if size > 1 && proof.VerifyInclusion(h, ord-1, size, other[:], hashes(p.Hashes), roots[size][:]) == nil {
				t.Fatalf("inclusion of %d in %d holds for another leaf", ord, size)
			}
		}
		for size1 := uint64(0); size1 <= size; size1++ {
			p, err := e.ledger.ConsistencyProof(ctx, size1, size)
			if err != nil {
				t.Fatal(err)
			}
			if err := proof.VerifyConsistency(h, size1, size, hashes(p.Hashes), roots[size1][:], roots[size][:]); err != nil {
				t.Fatalf("consistency %d to %d: %v", size1, size, err)
			}
		}
	}
	if _, err := e.ledger.InclusionProof(ctx, 1, n+1); !errors.Is(err, audit.ErrTreeSize) {
		t.Fatalf("proof beyond the tree: %v, want ErrTreeSize", err)
	}
	if _, err := e.ledger.ConsistencyProof(ctx, 2, 1); !errors.Is(err, audit.ErrTreeSize) {
		t.Fatalf("consistency backwards: %v, want ErrTreeSize", err)
	}
}

func hashes(p []audit.Hash) [][]byte {
	out := make([][]byte, len(p))
	for i := range p {
		out[i] = p[i][:]
	}
	return out
}

func TestTreeAndProofs(t *testing.T) {
	t.Parallel()
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			e := b.open(t)
			signer, vkey := newAuditKey(t, "idlog-audit-test")
			seed(t, e.store, 9)
			sealWith(t, e, audit.SealerOptions{CheckpointEvery: 5, Signer: signer})
			// A second sealer resumes the tree from the stored nodes.
			seed(t, e.store, 5)
			sealWith(t, e, audit.SealerOptions{CheckpointEvery: 5, Signer: signer})
			log := logOf(t, e.store)
			checkTree(t, e, log)

			// Every checkpoint holds the tree's root at its ordinal, signed.
			leaves := leavesOf(log)
			n := 0
			for c, err := range e.ledger.Checkpoints(ctx, 0, uint64(len(log))) {
				if err != nil {
					t.Fatal(err)
				}
				n++
				if want := naiveRoot(leaves[:c.Ordinal]); c.Root != want {
					t.Fatalf("checkpoint %d: root %s, want %s", c.Ordinal, c.Root, want)
				}
				th, err := audit.OpenCheckpoint([]byte(c.Note), vkey)
				if err != nil {
					t.Fatalf("checkpoint %d: %v\n%s", c.Ordinal, err, c.Note)
				}
				if th.Size != c.Ordinal || th.Root != c.Root || !th.Time.Equal(c.SealedAt) || th.Origin != "idlog-audit-test" {
					t.Fatalf("checkpoint %d signed %+v, sealed %+v", c.Ordinal, th, c)
				}
			}
			if n < 3 {
				t.Fatalf("%d checkpoints, want one every 5 events", n)
			}
			if r := verify(t, e); !r.OK() {
				t.Fatal(r.Problem)
			}
		})
	}
}

// TestTreeBackfill: a ledger sealed before the tree existed (migration 00120) gets its tree from
// the log when the sealer resumes.
func TestTreeBackfill(t *testing.T) {
	t.Parallel()
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			e := b.open(t)
			seed(t, e.store, 8)
			catchUp(t, e)
			e.exec(t, `DELETE FROM audit_tree_tiles`)
			seed(t, e.store, 3)
			catchUp(t, e)
			checkTree(t, e, logOf(t, e.store))
		})
	}
}

func TestSignedCheckpoint(t *testing.T) {
	t.Parallel()
	signer, vkey := newAuditKey(t, "idlog-audit")
	_, otherKey := newAuditKey(t, "idlog-audit")
	head := audit.TreeHead{Origin: "idlog-audit", Size: 42, Root: audit.LeafHash([]byte("x")), Time: time.Date(2026, 12, 3, 9, 0, 0, 123456000, time.UTC)}
	msg, err := head.Sign(signer)
	if err != nil {
		t.Fatal(err)
	}
	got, err := audit.OpenCheckpoint(msg, vkey)
	if err != nil || got != head {
		t.Fatalf("opened %+v, %v; want %+v", got, err, head)
	}
	if _, err := audit.OpenCheckpoint(msg, otherKey); !errors.Is(err, audit.ErrCheckpointSignature) {
		t.Fatalf("another key: %v, want ErrCheckpointSignature", err)
	}
	// The size raised by one digit, the signature kept.
	forged := bytes.Replace(msg, []byte("\n42\n"), []byte("\n43\n"), 1)
	if _, err := audit.OpenCheckpoint(forged, vkey); !errors.Is(err, audit.ErrCheckpointSignature) {
		t.Fatalf("forged size: %v, want ErrCheckpointSignature", err)
	}
	// A signature byte changed.
	bad := bytes.Clone(msg)
	i := bytes.LastIndexByte(bad, ' ') + 5
	bad[i] ^= 'A' ^ 'B'
	if bad[i] == msg[i] {
		t.Fatal("no byte changed")
	}
	if _, err := audit.OpenCheckpoint(bad, vkey); !errors.Is(err, audit.ErrCheckpointSignature) {
		t.Fatalf("bad signature: %v, want ErrCheckpointSignature", err)
	}
	if _, err := head.Sign(mustSigner(t, "someone-else")); err == nil {
		t.Fatal("signed a checkpoint whose origin is not the key's name")
	}

	// A file of checkpoints appended one after the other splits back into them.
	path := filepath.Join(t.TempDir(), "checkpoints")
	f := &audit.CheckpointFile{Path: path}
	var want []audit.TreeHead
	for size := uint64(1); size <= 3; size++ {
		h := head
		h.Size = size
		m, err := h.Sign(signer)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.PublishCheckpoint(context.Background(), audit.Checkpoint{Ordinal: size, Note: string(m)}); err != nil {
			t.Fatal(err)
		}
		want = append(want, h)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	notes := audit.SplitCheckpoints(data)
	if len(notes) != len(want) {
		t.Fatalf("%d notes in the file, want %d:\n%s", len(notes), len(want), data)
	}
	for i, m := range notes {
		if h, err := audit.OpenCheckpoint(m, vkey); err != nil || h != want[i] {
			t.Fatalf("note %d: %+v, %v", i, h, err)
		}
	}
}

func mustSigner(t *testing.T, name string) note.Signer {
	s, _ := newAuditKey(t, name)
	return s
}

// readCheckpoints opens every checkpoint of the file at path.
func readCheckpoints(t *testing.T, path, vkey string) []audit.TreeHead {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var heads []audit.TreeHead
	for _, m := range audit.SplitCheckpoints(data) {
		h, err := audit.OpenCheckpoint(m, vkey)
		if err != nil {
			t.Fatal(err)
		}
		heads = append(heads, h)
	}
	return heads
}

// resealFrom is the intruder's cover-up: delete the ledger rows, checkpoints and tree nodes from
// ordinal ord on, then seal again (with the audit key, which a sealer can read).
func resealFrom(t *testing.T, e *env, ord uint64, signer note.Signer) {
	t.Helper()
	e.exec(t, `DELETE FROM audit_events WHERE ordinal >= ?`, int64(ord))
	e.exec(t, `DELETE FROM audit_checkpoints WHERE ordinal >= ?`, int64(ord))
	// The tree goes whole: the sealer rebuilds it from the log it finds.
	e.exec(t, `DELETE FROM audit_tree_tiles`)
	sealWith(t, e, audit.SealerOptions{CheckpointEvery: 1, Signer: signer})
}

// TestVerifyAgainstCheckpoints: someone with write access to the database alters the log, cuts the
// ledger, checkpoints and tree back to before the change and seals again. Verify against the
// database is fooled; the checkpoints kept in a file outside it are not, and name the event.
func TestVerifyAgainstCheckpoints(t *testing.T) {
	t.Parallel()
	type tamper struct {
		name string
		// do alters the log and returns the ordinal from which it differs.
		do func(t *testing.T, e *env, log []eventstore.Event) uint64
	}
	tampers := []tamper{
		{"rewrite and reseal", func(t *testing.T, e *env, log []eventstore.Event) uint64 {
			flipDataByte(t, e, log[6].ID)
			return 7
		}},
		{"forged tail event", func(t *testing.T, e *env, log []eventstore.Event) uint64 {
			last := log[len(log)-1]
			e.exec(t, `UPDATE events SET event_id = ?, data = ? WHERE event_id = ?`, uuid.NewString(), `{"forged":true}`, last.ID.String())
			return uint64(len(log))
		}},
		{"deleted middle event", func(t *testing.T, e *env, log []eventstore.Event) uint64 {
			e.exec(t, `DELETE FROM events WHERE event_id = ?`, log[9].ID.String())
			return 10
		}},
		{"reordered pair", func(t *testing.T, e *env, log []eventstore.Event) uint64 {
			a, b := log[4], log[5]
			e.exec(t, `UPDATE events SET position = -1 WHERE position = ?`, int64(a.GlobalPosition))
			e.exec(t, `UPDATE events SET position = ? WHERE position = ?`, int64(a.GlobalPosition), int64(b.GlobalPosition))
			e.exec(t, `UPDATE events SET position = ? WHERE position = -1`, int64(b.GlobalPosition))
			return 5
		}},
	}
	for _, b := range backends(t) {
		for _, tc := range tampers {
			t.Run(b.name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				ctx := context.Background()
				e := b.open(t)
				signer, vkey := newAuditKey(t, "idlog-audit")
				path := filepath.Join(t.TempDir(), "checkpoints")
				seed(t, e.store, 10)
				// A checkpoint for every event: the file then pins each one.
				sealWith(t, e, audit.SealerOptions{CheckpointEvery: 1, Signer: signer, Publisher: &audit.CheckpointFile{Path: path}})
				log := logOf(t, e.store)
				heads := readCheckpoints(t, path, vkey)
				if len(heads) != len(log) {
					t.Fatalf("%d checkpoints in the file, want %d", len(heads), len(log))
				}
				r, err := audit.VerifyCheckpoints(ctx, e.store, heads)
				if err != nil || !r.OK() || r.Matched != len(log) || r.Covered != uint64(len(log)) {
					t.Fatalf("before tampering: %+v, %v", r, err)
				}

				ord := tc.do(t, e, log)
				resealFrom(t, e, ord, signer)
				if r := verify(t, e); !r.OK() {
					t.Fatalf("the reseal should fool the database's own verify, got %v", r.Problem)
				}

				r, err = audit.VerifyCheckpoints(ctx, e.store, heads)
				if err != nil {
					t.Fatal(err)
				}
				if r.OK() {
					t.Fatalf("tampering not caught against the checkpoints: %+v", r)
				}
				p := r.Problem
				now := logOf(t, e.store)
				var want uuid.UUID
				if ord <= uint64(len(now)) {
					want = now[ord-1].ID
				}
				if p.From != ord || p.To != ord || p.EventID != want || r.Matched != int(ord-1) {
					t.Fatalf("problem %s (from %d to %d, event %s, %d matched); want ordinal %d, event %s", p, p.From, p.To, p.EventID, r.Matched, ord, want)
				}
				t.Log(p)
			})
		}
	}
}

// TestTreeAcrossTiles: a log of more than 512 events, sealed in odd batches by two sealers in
// turn, so that tiles of the first two levels fill up, start anew and are resumed half full.
func TestTreeAcrossTiles(t *testing.T) {
	t.Parallel()
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			e := b.open(t)
			seed(t, e.store, 200)
			sealWith(t, e, audit.SealerOptions{BatchSize: 37, CheckpointEvery: 50})
			seed(t, e.store, 130)
			sealWith(t, e, audit.SealerOptions{BatchSize: 101, CheckpointEvery: 77})
			log := logOf(t, e.store)
			if len(log) <= 512 {
				t.Fatalf("%d events, want more than 512", len(log))
			}
			leaves := leavesOf(log)
			n := uint64(len(leaves))
			if size, err := e.ledger.TreeSize(ctx); err != nil || size != n {
				t.Fatalf("tree size %d, %v; want %d", size, err, n)
			}
			// Only the levels 0, 8, 16... are stored (migration 00200); the others are recomputed.
			var between, level8 int
			if err := e.db.QueryRow(`SELECT count(*) FROM audit_tree_tiles WHERE level % 8 <> 0`).Scan(&between); err != nil || between != 0 {
				t.Fatalf("%d tiles of levels between the stored ones, %v", between, err)
			}
			if err := e.db.QueryRow(`SELECT length(hashes) FROM audit_tree_tiles WHERE level = 8`).Scan(&level8); err != nil || level8 != 2*32 {
				t.Fatalf("level 8 holds %d bytes, %v; want 2 nodes", level8, err)
			}
			roots := make([]audit.Hash, n+1)
			for size := uint64(0); size <= n; size++ {
				roots[size] = naiveRoot(leaves[:size])
				if got, err := e.ledger.Root(ctx, size); err != nil || got != roots[size] {
					t.Fatalf("root at %d: %s, %v; want %s", size, got, err, roots[size])
				}
			}
			h := rfc6962.DefaultHasher
			for _, pair := range [][2]uint64{{1, n}, {256, n}, {257, n}, {512, 513}, {513, n}, {n, n}, {100, 300}} {
				ord, size := pair[0], pair[1]
				p, err := e.ledger.InclusionProof(ctx, ord, size)
				if err != nil {
					t.Fatal(err)
				}
				if err := proof.VerifyInclusion(h, ord-1, size, leaves[ord-1][:], hashes(p.Hashes), roots[size][:]); err != nil {
					t.Fatalf("inclusion of %d in %d: %v", ord, size, err)
				}
				c, err := e.ledger.ConsistencyProof(ctx, ord, size)
				if err != nil {
					t.Fatal(err)
				}
				if err := proof.VerifyConsistency(h, ord, size, hashes(c.Hashes), roots[ord][:], roots[size][:]); err != nil {
					t.Fatalf("consistency %d to %d: %v", ord, size, err)
				}
			}
		})
	}
}

// TestProofsWhileTheTreeGrows: one ledger serves proofs, from several goroutines at once, while
// the tree grows under it: the tiles and nodes it keeps (the upper strata, the right border of a
// size asked before) must never stand for nodes they do not hold, and a tile kept while it was
// the last of its level is read again once a node past its end is asked.
func TestProofsWhileTheTreeGrows(t *testing.T) {
	t.Parallel()
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			e := b.open(t)
			h := rfc6962.DefaultHasher
			var sizes []uint64
			for _, batch := range []int{80, 70, 60, 200, 150} {
				seed(t, e.store, batch)
				sealWith(t, e, audit.SealerOptions{BatchSize: 97, CheckpointEvery: 100})
				leaves := leavesOf(logOf(t, e.store))
				n := uint64(len(leaves))
				sizes = append(sizes, n)
				roots := map[uint64]audit.Hash{}
				for _, s := range sizes {
					roots[s] = naiveRoot(leaves[:s])
				}
				var wg sync.WaitGroup
				errs := make(chan error, 4)
				for g := range uint64(4) {
					wg.Go(func() {
						// Every leaf, in every size asked so far, spread over the goroutines.
						for _, size := range sizes {
							for ord := 1 + g; ord <= size; ord += 4 {
								p, err := e.ledger.InclusionProof(ctx, ord, size)
								if err == nil {
									root := roots[size]
									err = proof.VerifyInclusion(h, ord-1, size, leaves[ord-1][:], hashes(p.Hashes), root[:])
								}
								if err != nil {
									errs <- fmt.Errorf("inclusion of %d in %d: %w", ord, size, err)
									return
								}
							}
						}
						for _, from := range sizes {
							c, err := e.ledger.ConsistencyProof(ctx, from, n)
							if err == nil {
								r1, r2 := roots[from], roots[n]
								err = proof.VerifyConsistency(h, from, n, hashes(c.Hashes), r1[:], r2[:])
							}
							if err != nil {
								errs <- fmt.Errorf("consistency %d to %d: %w", from, n, err)
								return
							}
						}
					})
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					t.Fatal(err)
				}
			}
		})
	}
}
