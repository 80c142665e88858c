-- API key nonces (package apikeys): each nonce a key signed with, kept until it leaves the
-- accepted window, so a signed request replayed on any replica sharing this database is refused.
-- nonce is the client's milliseconds since the epoch; expires_at is unix microseconds, UTC.

-- +goose Up
CREATE TABLE api_key_nonces (
    kid        TEXT NOT NULL,
    nonce      BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (kid, nonce)
);
CREATE INDEX api_key_nonces_expiry ON api_key_nonces (expires_at);

-- +goose Down
DROP TABLE api_key_nonces;
