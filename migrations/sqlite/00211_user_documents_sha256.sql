-- The blob sweeper (blobs.Sweeper) asks which files the documents still name, by SHA-256.

-- +goose Up
CREATE INDEX user_documents_sha256 ON user_documents (generation, sha256);

-- +goose Down
DROP INDEX user_documents_sha256;
