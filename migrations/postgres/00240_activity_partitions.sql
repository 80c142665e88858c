-- The activity read model (projections.ActivityView) partitioned by generation: one table,
-- activity_g<generation>, per generation. A rebuild loads its generation into a table of its own
-- without indexes (COPY), then attaches it, which builds the indexes sorted, in one pass, instead
-- of maintaining five B-trees for every row; a retired generation is detached and dropped whole
-- instead of deleted row by row. The live generation's table is made when its projector first
-- runs (projections.Runtime). Queries are unchanged: they read the parent, pruned to the live
-- generation.

-- +goose Up
ALTER TABLE activity RENAME TO activity_unpartitioned;
ALTER INDEX activity_pkey RENAME TO activity_unpartitioned_pkey;
ALTER INDEX activity_uid RENAME TO activity_unpartitioned_uid;
ALTER INDEX activity_target RENAME TO activity_unpartitioned_target;
ALTER INDEX activity_topic RENAME TO activity_unpartitioned_topic;
ALTER INDEX activity_created RENAME TO activity_unpartitioned_created;
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
) PARTITION BY LIST (generation);
CREATE INDEX activity_uid ON activity (generation, uid, id);
CREATE INDEX activity_target ON activity (generation, target_uid, id);
CREATE INDEX activity_topic ON activity (generation, topic, id);
CREATE INDEX activity_created ON activity (generation, created_at);
-- +goose StatementBegin
DO $$
DECLARE g bigint;
BEGIN
    FOR g IN SELECT generation FROM activity_unpartitioned
             UNION SELECT generation FROM projection_checkpoints WHERE name = 'activity'
             UNION SELECT live FROM projection_generations WHERE name = 'activity'
             UNION SELECT building FROM projection_generations WHERE name = 'activity' AND building IS NOT NULL
    LOOP
        EXECUTE format('CREATE TABLE activity_g%s PARTITION OF activity FOR VALUES IN (%s)', g, g);
    END LOOP;
END $$;
-- +goose StatementEnd
INSERT INTO activity SELECT * FROM activity_unpartitioned;
DROP TABLE activity_unpartitioned;

-- +goose Down
ALTER TABLE activity RENAME TO activity_partitioned;
ALTER INDEX activity_pkey RENAME TO activity_partitioned_pkey;
ALTER INDEX activity_uid RENAME TO activity_partitioned_uid;
ALTER INDEX activity_target RENAME TO activity_partitioned_target;
ALTER INDEX activity_topic RENAME TO activity_partitioned_topic;
ALTER INDEX activity_created RENAME TO activity_partitioned_created;
CREATE TABLE activity (
    generation bigint NOT NULL,
    id         bigint NOT NULL,
    uid        text COLLATE "C" NOT NULL,
    target_uid text COLLATE "C",
    topic      text NOT NULL,
    action     text NOT NULL,
    result     text NOT NULL,
    user_ip    text NOT NULL,
    user_agent text NOT NULL,
    data       text,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (generation, id)
);
CREATE INDEX activity_uid ON activity (generation, uid, id);
CREATE INDEX activity_target ON activity (generation, target_uid, id);
CREATE INDEX activity_topic ON activity (generation, topic, id);
CREATE INDEX activity_created ON activity (generation, created_at);
INSERT INTO activity SELECT * FROM activity_partitioned;
DROP TABLE activity_partitioned; -- and its partitions
