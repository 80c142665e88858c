-- A new user's data key (package personaldata) is kept in their stream's row of streams, which
-- the registration writes anyway, instead of a row of its own in personal_data_keys: on SQLite
-- each table a transaction touches costs a whole page in the write-ahead log, and the key's page
-- made a sealed registration write about a fifth more than a plain one. personal_data_keys keeps
-- the keys written before this migration, the erasures (a row there, erased or not, takes
-- precedence over the stream's key) and the keys of stores that write keys outside the append.
-- Erasing sets data_key to NULL and records the erasure in personal_data_keys.

-- +goose Up
ALTER TABLE streams ADD COLUMN data_key BLOB;

-- +goose Down
-- Keys kept in streams move back to personal_data_keys before the column goes.
INSERT INTO personal_data_keys (uid, wrapped)
    SELECT substr(stream_id, length('user-') + 1), data_key FROM streams
    WHERE data_key IS NOT NULL AND stream_id LIKE 'user-%'
    ON CONFLICT (uid) DO NOTHING;
ALTER TABLE streams DROP COLUMN data_key;
