-- The activity read model (projections.ActivityView): one row per user-visible event, built from
-- the event and its envelope's metadata. id is the event's global position, so a rebuild gives
-- every row the same id again. One generation per rebuild (see 00010).

-- +goose Up
CREATE TABLE activity (
    generation bigint NOT NULL,
    id         bigint NOT NULL,
    uid        text COLLATE "C" NOT NULL, -- who acted
    target_uid text COLLATE "C",          -- the user an administrator acted on, else NULL
    topic      text NOT NULL,
    action     text NOT NULL,
    result     text NOT NULL,
    user_ip    text NOT NULL,
    user_agent text NOT NULL,
    data       text, -- JSON, NULL when none
    created_at timestamptz NOT NULL,
    PRIMARY KEY (generation, id)
);
CREATE INDEX activity_uid ON activity (generation, uid, id);
CREATE INDEX activity_target ON activity (generation, target_uid, id);
CREATE INDEX activity_topic ON activity (generation, topic, id);

-- +goose Down
DROP TABLE activity;
