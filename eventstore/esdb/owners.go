package esdb

import (
	"context"
	"fmt"

	"github.com/idlog/idlog/eventstore"
)

var _ eventstore.KeyOwners = (*Store)(nil)

// KeyOwner implements eventstore.KeyOwners: the key's reservation stream ends with a claim that
// names its owner, or the key is free.
func (s *Store) KeyOwner(ctx context.Context, key string) (string, error) {
	ctx, client, end, err := s.begin(ctx)
	if err != nil {
		return "", err
	}
	defer end()
	last, err := lastEvent(ctx, client, ReservationStream(s.ns, key))
	if err != nil {
		return "", s.fail(ctx, client, err, "read the reservation of a unique key")
	}
	if last == nil || last.EventType != keyClaimed {
		return "", fmt.Errorf("%w: %q", eventstore.ErrKeyNotClaimed, key)
	}
	return ownerOf(last), nil
}
