-- A retired generation's checkpoint (package projections). The swap of a rebuilt generation, and a
-- rebuild that supersedes another, mark the checkpoint they retire in their own transaction; a
-- batch moves its checkpoint only if it is not retired, so a batch of a retired generation that
-- was in flight rolls back, without batches having to lock anything else first.

-- +goose Up
ALTER TABLE projection_checkpoints ADD COLUMN retired boolean NOT NULL DEFAULT false;

-- +goose Down
ALTER TABLE projection_checkpoints DROP COLUMN retired;
