package personaldata

import "context"

// StoreAheadFor stores keys ahead for the given ids, as a batch of NewUserID does, and returns
// the ids it stored.
func (k *Keys) StoreAheadFor(ctx context.Context, uids []string) ([]string, error) {
	wrapped := make([][]byte, len(uids))
	for i, uid := range uids {
		_, wrapped[i], _ = k.newKey(uid)
	}
	return k.insertAhead(ctx, uids, wrapped)
}
