package auth

import (
	"crypto/rand"
	"sync"
)

// nonceBlock is random bytes read from crypto/rand at once and handed out a nonce at a time,
// each byte once. Nonces need to be unique, not secret: a block held in memory reveals nothing
// that the sealed values will not carry in plain.
type nonceBlock struct {
	b    [1024]byte
	next int // b[next:] is not handed out yet
}

// nonceBlocks lends each block to one goroutine at a time, so no byte is handed out twice.
var nonceBlocks = sync.Pool{New: func() any { return &nonceBlock{next: 1024} }}

// readNonce fills dst (at most 1024 bytes) with random bytes, one read of crypto/rand per 1 KiB:
// a read per nonce cost a system call (and, in a new goroutine, the growth of its stack) per
// sealed value.
func readNonce(dst []byte) {
	nb := nonceBlocks.Get().(*nonceBlock)
	if len(dst) > len(nb.b) {
		panic("auth: a nonce longer than a block of random bytes")
	}
	if len(nb.b)-nb.next < len(dst) {
		rand.Read(nb.b[:]) // never fails (crypto/rand, Go 1.24+)
		nb.next = 0
	}
	nb.next += copy(dst, nb.b[nb.next:])
	nonceBlocks.Put(nb)
}
