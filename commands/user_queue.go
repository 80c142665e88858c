package commands

import (
	"context"
	"hash/maphash"

	"github.com/idlog/idlog/domain"
)

// userQueueStripes is how many locks a UserQueue spreads users over: enough that two busy users
// rarely share one, few enough to cost little.
const userQueueStripes = 1024

// UserQueue runs commands on one user one at a time within this process. Commands on a hot stream
// (many spends of one wallet at once) would otherwise all load the same version, and all but one
// would lose the append, reload and try again, until they gave up with ErrConflict. Queued, each
// loads the version the previous one left, and the optimistic check remains for other processes
// and other commands. Users are spread over a fixed set of locks, so two users may share one. It
// is safe for concurrent use.
type UserQueue struct {
	seed    maphash.Seed
	stripes [userQueueStripes]chan struct{}
	across  UserLocks // nil: this process only
}

// UserLocks serialise commands on one user across replicas (a PostgreSQL advisory lock, say). A
// UserQueue takes the user's lock after its own turn, so one process holds at most one lock per
// user at a time.
type UserLocks interface {
	// Lock waits until this process holds the lock of key, or ctx ends.
	Lock(ctx context.Context, key string) (unlock func(), err error)
}

// Across makes the queue also hold the user's lock across replicas during each turn. Nil keeps
// it to this process. It returns q.
func (q *UserQueue) Across(l UserLocks) *UserQueue {
	q.across = l
	return q
}

// NewUserQueue returns an empty queue.
func NewUserQueue() *UserQueue {
	q := &UserQueue{seed: maphash.MakeSeed()}
	for i := range q.stripes {
		q.stripes[i] = make(chan struct{}, 1)
	}
	return q
}

// lock waits for the user's turn, or for ctx to end (a client that gave up stops waiting); call
// the returned function to end the turn.
func (q *UserQueue) lock(ctx context.Context, uid domain.UserID) (unlock func(), err error) {
	c := q.stripes[maphash.String(q.seed, string(uid))%userQueueStripes]
	select {
	case c <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if q.across == nil {
		return func() { <-c }, nil
	}
	release, err := q.across.Lock(ctx, "user "+string(uid))
	if err != nil {
		<-c
		return nil, err
	}
	return func() { release(); <-c }, nil
}
