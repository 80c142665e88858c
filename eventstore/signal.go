package eventstore

import "sync"

// Signal wakes every waiter at once when something changed: adapters ring it after each commit
// so live subscriptions read again at once instead of at their next poll. The zero value is ready.
type Signal struct {
	mu sync.Mutex
	ch chan struct{}
}

// Changed returns a channel closed at the next Notify. Take it before reading, so a change
// between the read and the wait is not missed.
func (s *Signal) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

// Notify wakes everyone waiting on a channel from Changed.
func (s *Signal) Notify() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
	}
}
