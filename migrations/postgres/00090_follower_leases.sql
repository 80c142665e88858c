-- Leases of the followers (package lease): one row per follower (a projector, the NATS relay, the
-- audit sealer). The replica named in owner runs the follower until expires_at; it renews the row
-- well before. token grows at every change of owner: the follower's writes check it, so a stalled
-- owner that wakes up after another took over cannot write.

-- +goose Up
CREATE TABLE follower_leases (
    name       text PRIMARY KEY,
    owner      text NOT NULL,
    token      bigint NOT NULL,
    expires_at timestamptz NOT NULL
);

-- +goose Down
DROP TABLE follower_leases;
