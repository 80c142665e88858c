package sqlite

import (
	"context"
	"strings"
)

// KeyOwners returns the streams holding those of keys that are claimed, a few hundred keys a
// query: KeyOwner for many keys (idlog users import checks a whole file's emails before it writes).
func (s *Store) KeyOwners(ctx context.Context, keys []string) (map[string]string, error) {
	if s.isClosed() {
		return nil, errClosed("key owners")
	}
	owners := make(map[string]string)
	const chunk = 500 // well under SQLite's limit on bound parameters
	for len(keys) > 0 {
		part := keys[:min(chunk, len(keys))]
		keys = keys[len(part):]
		args := make([]any, len(part))
		for i, k := range part {
			args[i] = k
		}
		q := "SELECT key, stream_id FROM unique_keys WHERE key IN (?" + strings.Repeat(",?", len(part)-1) + ")"
		rows, err := s.rdb.QueryContext(ctx, q, args...)
		if err != nil {
			return nil, s.readErr(ctx, "key owners", err)
		}
		for rows.Next() {
			var k, stream string
			if err := rows.Scan(&k, &stream); err != nil {
				rows.Close()
				return nil, s.readErr(ctx, "key owners", err)
			}
			owners[k] = stream
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, s.readErr(ctx, "key owners", err)
		}
	}
	return owners, nil
}
