package migrations

import (
	"bytes"
	"database/sql"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pressly/goose/v3"
	_ "modernc.org/sqlite"
)

// sqliteSteps returns a new SQLite database and the provider of the SQLite migrations over it, to
// be run step by step.
func sqliteSteps(t *testing.T) (*sql.DB, *goose.Provider) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "m.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	sub, err := fs.Sub(files, string(SQLite))
	if err != nil {
		t.Fatal(err)
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db, sub, goose.WithAllowOutofOrder(true))
	if err != nil {
		t.Fatal(err)
	}
	return db, p
}

// Migration 00270 rebuilds SQLite's personal_data_keys without rowids: the keys and the erased
// users stored before it are all there after it, and the table still refuses a row that is
// neither a key nor an erasure.
func TestSQLitePersonalDataKeysKeepTheirRows(t *testing.T) {
	ctx := t.Context()
	db, p := sqliteSteps(t)
	if _, err := p.UpTo(ctx, 269); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO personal_data_keys (uid, wrapped) VALUES ('U1', x'0102')`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO personal_data_keys (uid, wrapped, erased_at) VALUES ('U2', NULL, '2026-01-01T00:00:00.000Z')`); err != nil {
		t.Fatal(err)
	}
	if err := Up(ctx, db, SQLite); err != nil {
		t.Fatal(err)
	}
	var ddl string
	if err := db.QueryRowContext(ctx, `SELECT sql FROM sqlite_master WHERE name = 'personal_data_keys'`).Scan(&ddl); err != nil || !strings.Contains(ddl, "WITHOUT ROWID") {
		t.Fatalf("personal_data_keys = %q (%v), want WITHOUT ROWID", ddl, err)
	}
	var wrapped []byte
	var erased sql.NullString
	if err := db.QueryRowContext(ctx, `SELECT wrapped, erased_at FROM personal_data_keys WHERE uid = 'U1'`).Scan(&wrapped, &erased); err != nil || !bytes.Equal(wrapped, []byte{1, 2}) || erased.Valid {
		t.Errorf("U1 = %x %v (%v)", wrapped, erased, err)
	}
	if err := db.QueryRowContext(ctx, `SELECT wrapped, erased_at FROM personal_data_keys WHERE uid = 'U2'`).Scan(&wrapped, &erased); err != nil || wrapped != nil || erased.String != "2026-01-01T00:00:00.000Z" {
		t.Errorf("U2 = %x %v (%v)", wrapped, erased, err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO personal_data_keys (uid, wrapped) VALUES ('U3', NULL)`); err == nil {
		t.Error("a row with neither a key nor an erasure was accepted")
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO personal_data_keys (uid, wrapped) VALUES ('U1', x'03') ON CONFLICT (uid) DO NOTHING`); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRowContext(ctx, `SELECT wrapped FROM personal_data_keys WHERE uid = 'U1'`).Scan(&wrapped); err != nil || !bytes.Equal(wrapped, []byte{1, 2}) {
		t.Errorf("U1 after a second insert = %x (%v)", wrapped, err)
	}
}

// Migration 00280 keeps new data keys in the rows of streams; undoing it moves them back to
// personal_data_keys, where an erasure or an older key of the same user is left as it is.
func TestSQLiteStreamDataKeysMoveBackOnDown(t *testing.T) {
	ctx := t.Context()
	db, p := sqliteSteps(t)
	if _, err := p.UpTo(ctx, 280); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO streams (stream_id, version, data_key) VALUES ('user-U1', 1, x'0102'), ('user-U2', 1, x'0304'), ('kyc-U3', 1, x'05')`,
		`INSERT INTO personal_data_keys (uid, wrapped, erased_at) VALUES ('U2', NULL, '2026-01-01T00:00:00.000Z')`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p.DownTo(ctx, 279); err != nil {
		t.Fatal(err)
	}
	var wrapped []byte
	if err := db.QueryRowContext(ctx, `SELECT wrapped FROM personal_data_keys WHERE uid = 'U1'`).Scan(&wrapped); err != nil || !bytes.Equal(wrapped, []byte{1, 2}) {
		t.Errorf("U1's key after down = %x, %v, want 0102", wrapped, err)
	}
	if err := db.QueryRowContext(ctx, `SELECT wrapped FROM personal_data_keys WHERE uid = 'U2'`).Scan(&wrapped); err != nil || wrapped != nil {
		t.Errorf("U2's erasure after down = %x, %v, want it kept", wrapped, err)
	}
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM personal_data_keys`).Scan(&n); err != nil || n != 2 {
		t.Errorf("%d rows in personal_data_keys after down (%v), want 2: a stream that is not a user's holds no key", n, err)
	}
	if _, err := db.ExecContext(ctx, `SELECT data_key FROM streams`); err == nil {
		t.Error("streams.data_key survived the down migration")
	}
}
