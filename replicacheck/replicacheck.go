// Package replicacheck holds the checks a replica makes before it joins others on one database:
// the keys they must share, recorded by fingerprint, and the live replicas it would share the
// database with.
package replicacheck

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/idlog/idlog/migrations"
)

// ErrMismatch: a setting differs from the one recorded by the replicas already on the database.
var ErrMismatch = errors.New("replicacheck: this replica's setting differs from the one recorded in the database")

// MismatchError names the setting and both fingerprints. errors.Is(err, ErrMismatch) holds.
type MismatchError struct {
	Name, Recorded, Mine string
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("replicacheck: %s has fingerprint %s here, but %s is recorded in the database", e.Name, e.Mine, e.Recorded)
}

// Is makes errors.Is(err, ErrMismatch) true.
func (e *MismatchError) Is(target error) bool { return target == ErrMismatch }

// Fingerprint names key material without revealing it: the start of its SHA-256 under a label.
func Fingerprint(label string, key []byte) string {
	h := sha256.New()
	h.Write([]byte("idlog fingerprint " + label + "\x00"))
	h.Write(key)
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// Agree records value under name if the database holds none yet, and returns a *MismatchError
// if it holds another one.
func Agree(ctx context.Context, db *sql.DB, d migrations.Dialect, name, value string) error {
	ins, sel := `INSERT INTO replica_settings (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING`,
		`SELECT value FROM replica_settings WHERE name = ?`
	if d == migrations.Postgres {
		ins, sel = `INSERT INTO replica_settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`,
			`SELECT value FROM replica_settings WHERE name = $1`
	}
	if _, err := db.ExecContext(ctx, ins, name, value); err != nil {
		return fmt.Errorf("replicacheck: record %s: %w", name, err)
	}
	var recorded string
	if err := db.QueryRowContext(ctx, sel, name).Scan(&recorded); err != nil {
		return fmt.Errorf("replicacheck: read %s: %w", name, err)
	}
	if recorded != value {
		return &MismatchError{Name: name, Recorded: recorded, Mine: value}
	}
	return nil
}

// Replace records value under name in place of from, and reports whether from was the value
// recorded: a key rotation moves the replicas from the old key to the new one, and only the
// first replica to rotate changes the record.
func Replace(ctx context.Context, db *sql.DB, d migrations.Dialect, name, from, value string) (bool, error) {
	upd := `UPDATE replica_settings SET value = ? WHERE name = ? AND value = ?`
	if d == migrations.Postgres {
		upd = `UPDATE replica_settings SET value = $1 WHERE name = $2 AND value = $3`
	}
	res, err := db.ExecContext(ctx, upd, value, name, from)
	if err != nil {
		return false, fmt.Errorf("replicacheck: replace %s: %w", name, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("replicacheck: replace %s: %w", name, err)
	}
	return n == 1, nil
}

// OtherLiveReplicas returns the replicas other than me that hold an unexpired follower lease on
// a PostgreSQL database: the replicas running beside this one.
func OtherLiveReplicas(ctx context.Context, db *sql.DB, me string) ([]string, error) {
	rows, err := db.QueryContext(ctx, `SELECT DISTINCT owner FROM follower_leases WHERE expires_at > now() AND owner <> $1 ORDER BY owner`, me)
	if err != nil {
		return nil, fmt.Errorf("replicacheck: read the leases: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var o string
		if err := rows.Scan(&o); err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, rows.Err()
}
