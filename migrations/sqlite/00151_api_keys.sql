-- The API keys read model (projections.APIKeysView): each user's keys (Barong's APIKey) without
-- their secrets, one row per key per generation (see 00010). scopes is a JSON array. Queries read
-- the live generation only. Times are unix microseconds.

-- +goose Up
CREATE TABLE api_keys (
    generation INTEGER NOT NULL,
    uid        TEXT NOT NULL,
    kid        TEXT NOT NULL,
    algorithm  TEXT NOT NULL,
    scopes     TEXT NOT NULL DEFAULT '[]',
    state      TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (generation, uid, kid)
);

-- +goose Down
DROP TABLE api_keys;
