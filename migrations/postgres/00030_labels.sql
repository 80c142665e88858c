-- The labels read model (projections.LabelsView): the labels each user holds, one row per
-- (user, key, scope) per generation (see 00010). Queries read the live generation only.

-- +goose Up
CREATE TABLE user_labels (
    generation  bigint NOT NULL,
    uid         text COLLATE "C" NOT NULL,
    label_key   text COLLATE "C" NOT NULL,
    scope       text NOT NULL CHECK (scope IN ('public', 'private')),
    label_value text COLLATE "C" NOT NULL,
    description text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (generation, uid, label_key, scope)
);
-- Administrators list the users holding a key=value.
CREATE INDEX user_labels_key_value ON user_labels (generation, label_key, label_value, uid);

-- +goose Down
DROP TABLE user_labels;
