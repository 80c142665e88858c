-- Settings every replica on one database must share (package replicacheck); see the PostgreSQL
-- migration.

-- +goose Up
CREATE TABLE replica_settings (
    name        text PRIMARY KEY,
    value       text NOT NULL,
    recorded_at text NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

-- +goose Down
DROP TABLE replica_settings;
