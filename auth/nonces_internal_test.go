package auth

import (
	"sync"
	"testing"
)

// Nonces drawn from many goroutines at once, across the ends of the blocks they come from (1 KiB
// holds no whole number of 12-byte nonces), are never handed out twice. A block lent to two
// goroutines, or a refill that kept the block's position, would repeat one, and AES-GCM under
// one key with a nonce repeated gives away the XOR of both plaintexts.
func TestNoncesAreNeverHandedOutTwice(t *testing.T) {
	const goroutines, each = 8, 4000
	var mu sync.Mutex
	seen := make(map[[12]byte]bool, goroutines*each)
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			mine := make([][12]byte, each)
			for i := range mine {
				readNonce(mine[i][:])
			}
			mu.Lock()
			defer mu.Unlock()
			for _, n := range mine {
				if seen[n] {
					t.Errorf("nonce %x handed out twice", n)
				}
				seen[n] = true
			}
		})
	}
	wg.Wait()
	if len(seen) != goroutines*each {
		t.Fatalf("%d distinct nonces, want %d", len(seen), goroutines*each)
	}
}

// Seal's one buffer holds the authenticated data behind the sealed value: appending to what Seal
// returns must not reach it, and the value opens with the data it was sealed with, not another.
func TestSealedValueKeepsItsOwnBuffer(t *testing.T) {
	s, err := NewSealer(make([]byte, KeySize))
	if err != nil {
		t.Fatal(err)
	}
	sealed := s.Seal([]byte("secret"), []byte("user-1"))
	if cap(sealed) != len(sealed) {
		t.Fatalf("sealed value of %d bytes with room for %d: appending would write over its authenticated data", len(sealed), cap(sealed))
	}
	plain, err := s.Open(sealed, []byte("user-1"))
	if err != nil || string(plain) != "secret" {
		t.Fatalf("Open = %q, %v", plain, err)
	}
	if cap(plain) != len(plain) {
		t.Fatalf("opened value of %d bytes with room for %d", len(plain), cap(plain))
	}
	if _, err := s.Open(sealed, []byte("user-2")); err == nil {
		t.Fatal("opened with another user's additional data")
	}
}
