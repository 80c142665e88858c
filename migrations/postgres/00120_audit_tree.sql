-- The audit Merkle tree (package audit): the RFC 6962 tree over the same canonical bytes the hash
-- chain covers, leaf i being the event at ordinal i+1. Every node of a perfect subtree is kept, once
-- written never changed, so that inclusion and consistency proofs are read, not recomputed. The
-- sealer writes them in the transaction that writes the ledger rows of their leaves. Checkpoints
-- gain the tree's root at their ordinal and, when the sealer has an audit key, the checkpoint
-- signed as a note (see README.md, "Verifiable log").

-- +goose Up
CREATE TABLE audit_tree_nodes (
    level smallint NOT NULL CHECK (level >= 0 AND level < 64),
    idx   bigint  NOT NULL CHECK (idx >= 0),
    hash  bytea NOT NULL CHECK (length(hash) = 32),
    PRIMARY KEY (level, idx)
);

ALTER TABLE audit_checkpoints ADD COLUMN root bytea CHECK (root IS NULL OR length(root) = 32);
ALTER TABLE audit_checkpoints ADD COLUMN note text;

-- +goose Down
ALTER TABLE audit_checkpoints DROP COLUMN note;
ALTER TABLE audit_checkpoints DROP COLUMN root;
DROP TABLE audit_tree_nodes;
