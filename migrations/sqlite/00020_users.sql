-- The users read model (projections.UsersView): the current view of each user, one row per user
-- per generation (see 00010). Queries read the live generation only. Times are unix microseconds.

-- +goose Up
CREATE TABLE users (
    generation     INTEGER NOT NULL,
    uid            TEXT NOT NULL,
    email          TEXT NOT NULL,
    username       TEXT, -- NULL: the user has none
    role           TEXT NOT NULL,
    level          INTEGER NOT NULL DEFAULT 0,
    state          TEXT NOT NULL,
    otp            INTEGER NOT NULL,
    data           TEXT, -- the user's free JSON data, NULL when none
    email_verified INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    PRIMARY KEY (generation, uid)
);
-- Not unique: the event store's unique keys guard uniqueness; the read model only mirrors it.
CREATE INDEX users_email ON users (generation, email);
CREATE INDEX users_username ON users (generation, username);
CREATE INDEX users_created ON users (generation, created_at, uid);

-- +goose Down
DROP TABLE users;
