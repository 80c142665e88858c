-- The latest snapshot of each stream's aggregate (a rebuilt user's state): a cache of the events,
-- so that loading a user reads the snapshot and the events after it instead of its whole history.
-- Never a source of truth: a missing, stale or unreadable row is rebuilt from the events. It holds
-- the personal data the events hold; erasing a user deletes their row too.

-- +goose Up
CREATE TABLE snapshots (
    stream_id      TEXT PRIMARY KEY,
    version        INTEGER NOT NULL CHECK (version > 0),
    schema_version INTEGER NOT NULL,
    data           BLOB NOT NULL,
    saved_at       INTEGER NOT NULL -- unix microseconds, UTC
) WITHOUT ROWID;

-- +goose Down
DROP TABLE snapshots;
