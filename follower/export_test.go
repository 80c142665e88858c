package follower

import "sync"

// shrunk counts the tests that run with a shrunk tail.
var shrunk struct {
	sync.Mutex
	n int
}

// SetTailSize sets how many events a tail keeps, for a test; the returned func sets the default
// back once no other test that shrank it still runs (such tests may run in parallel, and the
// correctness they check holds at any size; a test of the read's pace needs the small size).
func SetTailSize(n int) (restore func()) {
	shrunk.Lock()
	defer shrunk.Unlock()
	shrunk.n++
	tailSize.Store(int64(n))
	return func() {
		shrunk.Lock()
		defer shrunk.Unlock()
		if shrunk.n--; shrunk.n == 0 {
			tailSize.Store(defaultTailSize)
		}
	}
}
