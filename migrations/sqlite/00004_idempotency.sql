-- Idempotency-Key claims and the first answers to them (package idempotency). One row per claim:
-- a keyed hash of the caller, route and key (and body, for anonymous callers), never the key or
-- body themselves. While the first request runs, answer is null and expires_at is its lease;
-- once it answered, answer holds the sealed status, headers and body and expires_at the end of
-- the retention. Rows past expires_at may be taken over or swept.

-- +goose Up
CREATE TABLE idempotency_answers (
    claim       TEXT PRIMARY KEY,
    fingerprint BLOB NOT NULL,    -- keyed hash of the request: method, path, query and body
    owner       TEXT NOT NULL,    -- random id of the request that holds the claim
    answer      BLOB,             -- sealed; null while the first request runs
    expires_at  INTEGER NOT NULL  -- unix microseconds, UTC
);
CREATE INDEX idempotency_answers_expires ON idempotency_answers (expires_at);

-- +goose Down
DROP TABLE idempotency_answers;
