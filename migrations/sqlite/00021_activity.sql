-- The activity read model (projections.ActivityView): one row per user-visible event, built from
-- the event and its envelope's metadata. id is the event's global position, so a rebuild gives
-- every row the same id again. One generation per rebuild (see 00010). Times are unix
-- microseconds.

-- +goose Up
CREATE TABLE activity (
    generation INTEGER NOT NULL,
    id         INTEGER NOT NULL,
    uid        TEXT NOT NULL, -- who acted
    target_uid TEXT,          -- the user an administrator acted on, else NULL
    topic      TEXT NOT NULL,
    action     TEXT NOT NULL,
    result     TEXT NOT NULL,
    user_ip    TEXT NOT NULL,
    user_agent TEXT NOT NULL,
    data       TEXT, -- JSON, NULL when none
    created_at INTEGER NOT NULL,
    PRIMARY KEY (generation, id)
);
CREATE INDEX activity_uid ON activity (generation, uid, id);
CREATE INDEX activity_target ON activity (generation, target_uid, id);
CREATE INDEX activity_topic ON activity (generation, topic, id);

-- +goose Down
DROP TABLE activity;
