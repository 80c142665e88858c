-- personal_data_keys becomes a WITHOUT ROWID table, as the event store's other tables keyed by
-- text are: a rowid table keyed by text keeps two B-trees (the rows and an index on uid), so each
-- new user's data key, written in their registration's transaction, dirtied two pages instead of
-- one, and each key look-up searched both. Rows and constraints are kept as they are.

-- +goose Up
CREATE TABLE personal_data_keys_new (
    uid        TEXT PRIMARY KEY,
    wrapped    BLOB,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    erased_at  TEXT,
    CHECK ((wrapped IS NULL) = (erased_at IS NOT NULL))
) WITHOUT ROWID;
INSERT INTO personal_data_keys_new (uid, wrapped, created_at, erased_at)
    SELECT uid, wrapped, created_at, erased_at FROM personal_data_keys;
DROP TABLE personal_data_keys;
ALTER TABLE personal_data_keys_new RENAME TO personal_data_keys;

-- +goose Down
CREATE TABLE personal_data_keys_old (
    uid        TEXT PRIMARY KEY,
    wrapped    BLOB,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    erased_at  TEXT,
    CHECK ((wrapped IS NULL) = (erased_at IS NOT NULL))
);
INSERT INTO personal_data_keys_old (uid, wrapped, created_at, erased_at)
    SELECT uid, wrapped, created_at, erased_at FROM personal_data_keys;
DROP TABLE personal_data_keys;
ALTER TABLE personal_data_keys_old RENAME TO personal_data_keys;
