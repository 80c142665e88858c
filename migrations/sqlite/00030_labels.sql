-- The labels read model (projections.LabelsView): the labels each user holds, one row per
-- (user, key, scope) per generation (see 00010). Queries read the live generation only. Times are
-- unix microseconds.

-- +goose Up
CREATE TABLE user_labels (
    generation  INTEGER NOT NULL,
    uid         TEXT NOT NULL,
    label_key   TEXT NOT NULL,
    scope       TEXT NOT NULL CHECK (scope IN ('public', 'private')),
    label_value TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (generation, uid, label_key, scope)
);
-- Administrators list the users holding a key=value.
CREATE INDEX user_labels_key_value ON user_labels (generation, label_key, label_value, uid);

-- +goose Down
DROP TABLE user_labels;
