-- The projection runtime's bookkeeping (package projections). Read models live in this file
-- beside the event log; every read-model table has a generation column, so a rebuild writes a
-- new generation beside the live one and a one-row update swaps it in. Times are unix
-- microseconds, UTC, as in the event log.

-- +goose Up
-- Which generation of a projector's tables queries read (live) and which one a rebuild is
-- filling (building). Write transactions take the file's write lock up front, so a batch and the
-- swap never interleave.
CREATE TABLE projection_generations (
    name       TEXT PRIMARY KEY,
    live       INTEGER NOT NULL CHECK (live > 0),
    building   INTEGER CHECK (building > live),
    swapped_at INTEGER
) WITHOUT ROWID;

-- The last global position whose effect a generation of a projector holds. It is written in the
-- same transaction as the read-model change: exactly-once effect after any crash.
CREATE TABLE projection_checkpoints (
    name          TEXT NOT NULL,
    generation    INTEGER NOT NULL CHECK (generation > 0),
    position      INTEGER NOT NULL CHECK (position >= 0),
    updated_at    INTEGER NOT NULL,
    last_error    TEXT,
    last_error_at INTEGER,
    PRIMARY KEY (name, generation)
) WITHOUT ROWID;

-- +goose Down
DROP TABLE projection_checkpoints;
DROP TABLE projection_generations;
