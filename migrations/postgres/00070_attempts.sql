-- The attempt limiter (package attempts): one row per counter of attempts at a secret (a password,
-- a two-factor code, a one-shot token) or of code requests, shared by every replica on this
-- database. Keys are SHA-256 hashes of what they count (a login, an address, a user id), so no
-- personal data is stored here. An attempt is pending from Try to Done, and counts meanwhile as
-- a failure of that moment, so parallel guesses cannot pass one count together. Times are unix
-- microseconds, UTC. A row whose expires_at passed counts as zero and is swept.

-- +goose Up
CREATE TABLE attempt_counters (
    key          TEXT PRIMARY KEY,
    failures     BIGINT NOT NULL CHECK (failures >= 0),
    pending      BIGINT NOT NULL CHECK (pending >= 0), -- admitted, not yet known to have failed
    last_failure BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);
CREATE INDEX attempt_counters_expiry ON attempt_counters (expires_at);

-- Marks that something is trusted until a time: an address a user signed in from.
CREATE TABLE attempt_marks (
    key   TEXT PRIMARY KEY,
    until BIGINT NOT NULL
);
CREATE INDEX attempt_marks_expiry ON attempt_marks (until);

-- +goose Down
DROP TABLE attempt_marks;
DROP TABLE attempt_counters;
