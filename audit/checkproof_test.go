package audit_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/idlog/idlog/audit"
)

// TestCheckProofRandom: for 1,000 random events and tree sizes, the proof the ledger gives for an
// exported event checks against a checkpoint signed for that size with no database; the same
// proof fails for another event, a changed proof hash, or a checkpoint of another size. Random
// consistency proofs check likewise.
func TestCheckProofRandom(t *testing.T) {
	t.Parallel()
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			e := b.open(t)
			signer, vkey := newAuditKey(t, "idlog-audit")
			seed(t, e.store, 80)
			tail := sealWith(t, e, audit.SealerOptions{Signer: signer})
			var buf bytes.Buffer
			if _, err := audit.Export(ctx, e.store, &buf, 0); err != nil {
				t.Fatal(err)
			}
			lines := bytes.SplitAfter(bytes.TrimSuffix(buf.Bytes(), []byte("\n")), []byte("\n"))
			n := tail.Ordinal
			if uint64(len(lines)) != n {
				t.Fatalf("%d export lines, %d sealed", len(lines), n)
			}
			rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 19))
			checkpoint := func(size uint64) []byte {
				root, err := e.ledger.Root(ctx, size)
				if err != nil {
					t.Fatal(err)
				}
				msg, err := audit.TreeHead{Origin: "idlog-audit", Size: size, Root: root, Time: time.Now()}.Sign(signer)
				if err != nil {
					t.Fatal(err)
				}
				return msg
			}
			for range 1000 {
				size := 1 + rng.Uint64N(n)
				ord := 1 + rng.Uint64N(size)
				cp := checkpoint(size)
				p, err := e.ledger.InclusionProof(ctx, ord, size)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := audit.CheckInclusion(cp, vkey, lines[ord-1], p); err != nil {
					t.Fatalf("event %d in %d: %v", ord, size, err)
				}
				if size > 1 {
					other := 1 + (ord+rng.Uint64N(size-1))%size
					if _, err := audit.CheckInclusion(cp, vkey, lines[other-1], p); !errors.Is(err, audit.ErrProofFailed) {
						t.Fatalf("event %d with the proof of %d in %d: %v, want ErrProofFailed", other, ord, size, err)
					}
					q := p
					q.Hashes = append([]audit.Hash(nil), p.Hashes...)
					q.Hashes[rng.IntN(len(q.Hashes))][rng.IntN(32)] ^= 1
					if _, err := audit.CheckInclusion(cp, vkey, lines[ord-1], q); !errors.Is(err, audit.ErrProofFailed) {
						t.Fatalf("event %d in %d with a changed proof: %v, want ErrProofFailed", ord, size, err)
					}
				}
				if size < n {
					if _, err := audit.CheckInclusion(checkpoint(size+1), vkey, lines[ord-1], p); !errors.Is(err, audit.ErrProofFailed) {
						t.Fatalf("event %d: proof for %d against a checkpoint of %d: %v", ord, size, size+1, err)
					}
				}

				size1 := rng.Uint64N(size + 1)
				cp1 := checkpoint(size1)
				c, err := e.ledger.ConsistencyProof(ctx, size1, size)
				if err != nil {
					t.Fatal(err)
				}
				if _, _, err := audit.CheckConsistency(cp1, cp, vkey, c); err != nil {
					t.Fatalf("consistency %d to %d: %v", size1, size, err)
				}
				if size1 > 0 && size1 < size {
					// Against a root that is not the tree's at size1: no.
					forged, err := audit.TreeHead{Origin: "idlog-audit", Size: size1, Root: audit.LeafHash([]byte("forged")), Time: time.Now()}.Sign(signer)
					if err != nil {
						t.Fatal(err)
					}
					if _, _, err := audit.CheckConsistency(forged, cp, vkey, c); !errors.Is(err, audit.ErrProofFailed) {
						t.Fatalf("consistency %d to %d from a forged root: %v", size1, size, err)
					}
				}
			}
		})
	}
}
