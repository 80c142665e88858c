-- The audit Merkle tree (package audit): the RFC 6962 tree over the same canonical bytes the hash
-- chain covers, leaf i being the event at ordinal i+1. Every node of a perfect subtree is kept, so
-- that inclusion and consistency proofs are read, not recomputed: a row (a tile) holds the hashes
-- of up to 256 nodes of one level, nodes tile*256 to tile*256+255 in order, 32 bytes each; only
-- the last tile of a level grows. The sealer writes them in the transaction that writes the ledger
-- rows of their leaves. Checkpoints
-- gain the tree's root at their ordinal and, when the sealer has an audit key, the checkpoint
-- signed as a note (see README.md, "Verifiable log").

-- +goose Up
CREATE TABLE audit_tree_tiles (
    level  INTEGER NOT NULL CHECK (level >= 0 AND level < 64),
    tile   INTEGER NOT NULL CHECK (tile >= 0),
    hashes BLOB NOT NULL CHECK (length(hashes) % 32 = 0 AND length(hashes) BETWEEN 32 AND 8192),
    PRIMARY KEY (level, tile)
) WITHOUT ROWID;

ALTER TABLE audit_checkpoints ADD COLUMN root BLOB CHECK (root IS NULL OR length(root) = 32);
ALTER TABLE audit_checkpoints ADD COLUMN note TEXT;

-- +goose Down
ALTER TABLE audit_checkpoints DROP COLUMN note;
ALTER TABLE audit_checkpoints DROP COLUMN root;
DROP TABLE audit_tree_tiles;
