-- Leases of the followers (package lease); see the PostgreSQL migration. expires_at is in unix
-- milliseconds of the one process that uses a SQLite database.

-- +goose Up
CREATE TABLE follower_leases (
    name       text PRIMARY KEY,
    owner      text NOT NULL,
    token      integer NOT NULL,
    expires_at integer NOT NULL
);

-- +goose Down
DROP TABLE follower_leases;
