-- The audit ledger (package audit): one row per event of the global log, in order, with the hash
-- chain over the events' canonical bytes, and the sealed checkpoints of that chain. Only the audit
-- sealer writes here; it follows the committed log, so appends never wait for it. The chain is
-- keyed by ordinal (1, 2, 3, ... in global order), not by position, so it survives a move to
-- another backend; position says where the event was when it was sealed.

-- +goose Up
CREATE TABLE audit_events (
    ordinal  INTEGER PRIMARY KEY CHECK (ordinal > 0),
    position INTEGER NOT NULL UNIQUE,
    event_id TEXT NOT NULL UNIQUE,
    chain    BLOB NOT NULL CHECK (length(chain) = 32)
);

CREATE TABLE audit_checkpoints (
    ordinal      INTEGER PRIMARY KEY CHECK (ordinal > 0),
    position     INTEGER NOT NULL,
    chain        BLOB NOT NULL CHECK (length(chain) = 32),
    sealed_at    INTEGER NOT NULL, -- unix microseconds, UTC
    published_at INTEGER           -- null until a CheckpointPublisher took it
);
CREATE INDEX audit_checkpoints_unpublished ON audit_checkpoints (ordinal) WHERE published_at IS NULL;

-- +goose Down
DROP TABLE audit_checkpoints;
DROP TABLE audit_events;
