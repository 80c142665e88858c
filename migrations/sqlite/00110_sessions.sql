-- The sessions read model (projections.SessionsView): the open sessions of each user, one row per
-- session per generation (see 00010), with the device and address they were last used from.
-- Rows leave when the session ends; expired ones when their user next signs in. Queries read the
-- live generation only. Times are unix microseconds.

-- +goose Up
CREATE TABLE user_sessions (
    generation   INTEGER NOT NULL,
    uid          TEXT NOT NULL,
    sid          TEXT NOT NULL,
    user_agent   TEXT NOT NULL DEFAULT '',
    user_ip      TEXT NOT NULL DEFAULT '',
    cookie       INTEGER NOT NULL DEFAULT 0,
    started_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    PRIMARY KEY (generation, uid, sid)
);

-- +goose Down
DROP TABLE user_sessions;
