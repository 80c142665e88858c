-- The courier's outbox (package courier): messages to people (codes, links, security notices),
-- written in the same transaction as the events that cause them (eventstore.Append.Outbox), and
-- deleted once delivered or expired. It is not the event log: the payload (recipient, code, link
-- data) is sealed with the secret key, bound to the row id, so the table holds no secret in plain.
-- Times are unix milliseconds, the same in both dialects. dead: delivery gave up after the
-- configured number of attempts; the row stays for an operator until it expires.

-- +goose Up
CREATE TABLE outbox (
    id              text PRIMARY KEY,
    kind            text NOT NULL,
    channel         text NOT NULL,
    uid             text NOT NULL,
    sealed          bytea NOT NULL,
    created_at      bigint NOT NULL,
    expires_at      bigint NOT NULL,
    next_attempt_at bigint NOT NULL,
    attempts        integer NOT NULL DEFAULT 0,
    last_error      text NOT NULL DEFAULT '',
    dead            boolean NOT NULL DEFAULT false
);
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE NOT dead;

-- +goose Down
DROP TABLE outbox;
