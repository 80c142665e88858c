-- The append-only event log. Rows of events are never updated or deleted by idlog. Writes are
-- serialised by the adapter, so position order is commit order; AUTOINCREMENT never reuses a
-- position, even after the last row was removed by hand.

-- +goose Up
CREATE TABLE streams (
    stream_id TEXT PRIMARY KEY,
    version   INTEGER NOT NULL CHECK (version > 0)
) WITHOUT ROWID;

CREATE TABLE events (
    position       INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id       TEXT NOT NULL UNIQUE,
    stream_id      TEXT NOT NULL,
    stream_version INTEGER NOT NULL CHECK (stream_version > 0),
    event_type     TEXT NOT NULL,
    schema_version INTEGER NOT NULL CHECK (schema_version > 0),
    data           TEXT NOT NULL,
    metadata       TEXT NOT NULL,
    recorded_at    INTEGER NOT NULL, -- unix microseconds, UTC
    UNIQUE (stream_id, stream_version)
);
CREATE INDEX events_type_position ON events (event_type, position);

CREATE TABLE unique_keys (
    key        TEXT PRIMARY KEY,
    stream_id  TEXT NOT NULL,
    claimed_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE checkpoints (
    name       TEXT PRIMARY KEY,
    position   INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;

-- +goose Down
DROP TABLE checkpoints;
DROP TABLE unique_keys;
DROP TABLE events;
DROP TABLE streams;
