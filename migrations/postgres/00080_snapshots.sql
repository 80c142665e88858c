-- The latest snapshot of each stream's aggregate (a rebuilt user's state): a cache of the events,
-- so that loading a user reads the snapshot and the events after it instead of its whole history.
-- Never a source of truth: a missing, stale or unreadable row is rebuilt from the events. It holds
-- the personal data the events hold; erasing a user deletes their row too.

-- +goose Up
CREATE TABLE snapshots (
    stream_id      text COLLATE "C" PRIMARY KEY,
    version        bigint NOT NULL CHECK (version > 0),
    schema_version int NOT NULL,
    data           bytea NOT NULL,
    saved_at       timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE snapshots;
