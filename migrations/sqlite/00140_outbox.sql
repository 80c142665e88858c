-- The courier's outbox (package courier); see the PostgreSQL migration.

-- +goose Up
CREATE TABLE outbox (
    id              text PRIMARY KEY,
    kind            text NOT NULL,
    channel         text NOT NULL,
    uid             text NOT NULL,
    sealed          blob NOT NULL,
    created_at      integer NOT NULL,
    expires_at      integer NOT NULL,
    next_attempt_at integer NOT NULL,
    attempts        integer NOT NULL DEFAULT 0,
    last_error      text NOT NULL DEFAULT '',
    dead            integer NOT NULL DEFAULT 0
);
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE dead = 0;

-- +goose Down
DROP TABLE outbox;
