package auth

import (
	"crypto/rand"
	"fmt"

	"golang.org/x/mod/sumdb/note"
)

// AuditKeyName is the name of an audit key LoadOrCreateAuditKey makes: the origin line of the
// audit checkpoints it signs.
const AuditKeyName = "idlog-audit"

// LoadOrCreateAuditKey returns the audit key file at path (two lines: the note signer key, then
// its verifier key, as audit.ParseAuditKey reads them), or, if there is none, creates it (mode
// 0600) with a new Ed25519 key named AuditKeyName. The audit key signs the audit checkpoints
// only: a key of its own, so that the token or event keys leaking does not forge checkpoints.
func LoadOrCreateAuditKey(path string) ([]byte, error) {
	var genErr error
	b, err := loadOrCreateFile(path, func() []byte {
		skey, vkey, err := note.GenerateKey(rand.Reader, AuditKeyName)
		if err != nil {
			genErr = err
			return nil
		}
		return []byte(skey + "\n" + vkey + "\n")
	})
	if genErr != nil {
		return nil, fmt.Errorf("auth: generate audit key: %w", genErr)
	}
	return b, err
}
