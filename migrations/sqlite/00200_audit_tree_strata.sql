-- The audit Merkle tree (package audit) keeps only the levels 0, 8, 16, ... of its nodes: the
-- bottom rows of C2SP tlog-tiles' tiles of height 8. A node of the seven levels between is the
-- root of at most 128 nodes of the stored level below it, in one tile, and is recomputed when a
-- proof needs it. The sealer writes half as much. The rows of the levels between, written
-- before, are redundant and go.

-- +goose Up
DELETE FROM audit_tree_tiles WHERE level % 8 <> 0;

-- +goose Down
-- The code before this migration reads every level: without the whole tree, its sealer rebuilds
-- the tree from the log at its next start.
DELETE FROM audit_tree_tiles;
