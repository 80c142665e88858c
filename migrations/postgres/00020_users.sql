-- The users read model (projections.UsersView): the current view of each user, one row per user
-- per generation (see 00010). Queries read the live generation only.

-- +goose Up
CREATE TABLE users (
    generation     bigint NOT NULL,
    uid            text COLLATE "C" NOT NULL,
    email          text COLLATE "C" NOT NULL,
    username       text COLLATE "C", -- NULL: the user has none
    role           text NOT NULL,
    level          int NOT NULL DEFAULT 0,
    state          text NOT NULL,
    otp            boolean NOT NULL,
    data           text, -- the user's free JSON data, NULL when none
    email_verified boolean NOT NULL,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    PRIMARY KEY (generation, uid)
);
-- Not unique: the event store's unique keys guard uniqueness; the read model only mirrors it.
CREATE INDEX users_email ON users (generation, email);
CREATE INDEX users_username ON users (generation, username);
CREATE INDEX users_created ON users (generation, created_at, uid);

-- +goose Down
DROP TABLE users;
