package follower

// SetTailSize sets how many events a tail keeps, for a test; the returned func sets the default
// back (tests that shrink it may run in parallel: the correctness they check holds at any size).
func SetTailSize(n int) (restore func()) {
	tailSize.Store(int64(n))
	return func() { tailSize.Store(defaultTailSize) }
}
