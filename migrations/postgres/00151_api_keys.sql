-- The API keys read model (projections.APIKeysView): each user's keys (Barong's APIKey) without
-- their secrets, one row per key per generation (see 00010). scopes is a JSON array. Queries read
-- the live generation only.

-- +goose Up
CREATE TABLE api_keys (
    generation bigint NOT NULL,
    uid        text COLLATE "C" NOT NULL,
    kid        text COLLATE "C" NOT NULL,
    algorithm  text NOT NULL,
    scopes     text NOT NULL DEFAULT '[]',
    state      text NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (generation, uid, kid)
);

-- +goose Down
DROP TABLE api_keys;
