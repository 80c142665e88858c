-- The sessions read model (projections.SessionsView): the open sessions of each user, one row per
-- session per generation (see 00010), with the device and address they were last used from.
-- Rows leave when the session ends; expired ones when their user next signs in. Queries read the
-- live generation only.

-- +goose Up
CREATE TABLE user_sessions (
    generation   bigint NOT NULL,
    uid          text COLLATE "C" NOT NULL,
    sid          text COLLATE "C" NOT NULL,
    user_agent   text NOT NULL DEFAULT '',
    user_ip      text NOT NULL DEFAULT '',
    cookie       boolean NOT NULL DEFAULT false,
    started_at   timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    PRIMARY KEY (generation, uid, sid)
);

-- +goose Down
DROP TABLE user_sessions;
