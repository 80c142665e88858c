package auth

import (
	"runtime"
	"testing"
	"testing/synctest"
)

// TestHashesQueueBeyondTheCores: with every slot taken, a hash waits until one is free, so no more
// hashes than cores hold their memory at once.
func TestHashesQueueBeyondTheCores(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h, err := NewPasswordHasher(Params{Memory: 64, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32})
		if err != nil {
			t.Fatal(err)
		}
		if cap(h.slots) != runtime.GOMAXPROCS(0) {
			t.Fatalf("%d slots for %d cores", cap(h.slots), runtime.GOMAXPROCS(0))
		}
		for range cap(h.slots) {
			h.slots <- struct{}{} // every core busy hashing
		}
		done := make(chan string)
		go func() { done <- h.Hash("correct horse battery staple") }()
		synctest.Wait() // the hash is blocked, or finished
		select {
		case <-done:
			t.Fatal("a hash ran with every slot taken")
		default:
		}
		<-h.slots // one hash finishes
		if ok, err := h.Verify("correct horse battery staple", <-done); !ok || err != nil {
			t.Fatalf("the queued hash does not verify: %v, %v", ok, err)
		}
	})
}
