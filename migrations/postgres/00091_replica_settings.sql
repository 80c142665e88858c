-- Settings every replica on one database must share (package replicacheck): the fingerprints of
-- the token signing key and of the secret sealing key. The first replica records them; the others
-- refuse to start with different keys.

-- +goose Up
CREATE TABLE replica_settings (
    name        text PRIMARY KEY,
    value       text NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE replica_settings;
