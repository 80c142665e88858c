package projections

import (
	"context"
	"fmt"

	"github.com/jmoiron/sqlx"
)

// Referenced returns those of sums (SHA-256 in hex) that a document of an open account names:
// the blob sweeper (blobs.Sweeper) deletes the files of the others. A closed account's documents
// are gone from the view, so its files are no longer named, unless another account uploaded the
// same bytes.
func (v *KYCView) Referenced(ctx context.Context, sums []string) (map[string]bool, error) {
	out := make(map[string]bool, len(sums))
	if len(sums) == 0 {
		return out, nil
	}
	q, args, err := sqlx.In(`SELECT DISTINCT sha256 FROM user_documents WHERE generation = `+kycLive+` AND sha256 IN (?)`, sums)
	if err != nil {
		return nil, fmt.Errorf("projections: documents' files: %w", err)
	}
	var named []string
	if err := v.db.SelectContext(ctx, &named, v.d.rebind(q), args...); err != nil {
		return nil, fmt.Errorf("projections: documents' files: %w", err)
	}
	for _, s := range named {
		out[s] = true
	}
	return out, nil
}
