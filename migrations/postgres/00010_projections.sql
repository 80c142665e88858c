-- The projection runtime's bookkeeping (package projections). Read models live in this database
-- beside the event log; every read-model table has a generation column, so a rebuild writes a
-- new generation beside the live one and a one-row update swaps it in.

-- +goose Up
-- Which generation of a projector's tables queries read (live) and which one a rebuild is
-- filling (building). Writers lock the row (FOR SHARE) in each batch transaction, and the swap
-- locks it FOR UPDATE, so no batch of a retired generation commits after the swap.
CREATE TABLE projection_generations (
    name       text PRIMARY KEY,
    live       bigint NOT NULL CHECK (live > 0),
    building   bigint CHECK (building > live),
    swapped_at timestamptz
);

-- The last global position whose effect a generation of a projector holds. It is written in the
-- same transaction as the read-model change: exactly-once effect after any crash.
CREATE TABLE projection_checkpoints (
    name          text NOT NULL,
    generation    bigint NOT NULL CHECK (generation > 0),
    position      bigint NOT NULL CHECK (position >= 0),
    updated_at    timestamptz NOT NULL,
    last_error    text,
    last_error_at timestamptz,
    PRIMARY KEY (name, generation)
);

-- +goose Down
DROP TABLE projection_checkpoints;
DROP TABLE projection_generations;
