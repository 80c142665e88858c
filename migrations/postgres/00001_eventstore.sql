-- The append-only event log. Rows of events are never updated or deleted by idlog.
--
-- Global order: position = (transaction id << 20) | index of the event in its append. Readers of
-- the global log only read positions below (xmin of their snapshot << 20): every transaction with
-- a lower id has then committed or aborted, so no event can later appear below a position a
-- follower has already passed (the bigserial visibility gap). Appends never wait for each other
-- unless they touch the same stream or unique key.

-- +goose Up
CREATE TABLE events (
    position       bigint PRIMARY KEY,
    event_id       uuid NOT NULL UNIQUE,
    stream_id      text COLLATE "C" NOT NULL,
    stream_version bigint NOT NULL CHECK (stream_version > 0),
    event_type     text NOT NULL,
    schema_version int NOT NULL CHECK (schema_version > 0),
    data           json NOT NULL, -- json, not jsonb: the exact bytes appended are kept
    metadata       jsonb NOT NULL, -- read field by field, so jsonb
    recorded_at    timestamptz NOT NULL,
    -- Optimistic concurrency: two appends that both read version n and write n+1 cannot both commit.
    CONSTRAINT events_stream_version UNIQUE (stream_id, stream_version)
);
CREATE INDEX events_type_position ON events (event_type, position);

CREATE TABLE unique_keys (
    key        text COLLATE "C" PRIMARY KEY,
    stream_id  text COLLATE "C" NOT NULL,
    claimed_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE checkpoints (
    name       text PRIMARY KEY,
    position   bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- idlog_append performs one whole append in one statement, so it costs one round trip. A stream's
-- version is its highest stream_version; a concurrent append that wrote the same version first
-- makes this one fail on events_stream_version (SQLSTATE 23505), which the adapter reports as a
-- concurrency conflict. Other errors: IDL01 wrong expected version (the message is the actual
-- version), IDL02 unique key taken (the message is the key). A retry of a stored append fails on
-- the event id's unique index and the adapter answers it with the original result.
-- +goose StatementBegin
CREATE FUNCTION idlog_append(
    p_stream text, p_expected bigint,
    p_ids uuid[], p_types text[], p_schema_versions int[], p_data text[], p_metadata text[],
    p_claims text[], p_releases text[]
) RETURNS TABLE (first_version bigint, last_version bigint, first_position bigint, last_position bigint, recorded_at timestamptz)
LANGUAGE plpgsql AS $fn$
DECLARE
    n      int := cardinality(p_ids);
    v_cur  bigint := 0;
    v_key  text;
    v_pos  bigint;
    v_now  timestamptz := now();
BEGIN
    IF p_expected <> 0 THEN
        SELECT e.stream_version INTO v_cur FROM events e
        WHERE e.stream_id = p_stream ORDER BY e.stream_version DESC LIMIT 1;
        v_cur := coalesce(v_cur, 0);
        IF p_expected > 0 AND v_cur <> p_expected THEN
            RAISE EXCEPTION USING ERRCODE = 'IDL01', MESSAGE = v_cur::text;
        END IF;
    END IF;

    -- Releases first, so one append may release a key and claim it again.
    FOREACH v_key IN ARRAY coalesce(p_releases, '{}') LOOP
        DELETE FROM unique_keys u WHERE u.key = v_key AND u.stream_id = p_stream;
    END LOOP;
    FOREACH v_key IN ARRAY coalesce(p_claims, '{}') LOOP
        INSERT INTO unique_keys (key, stream_id) VALUES (v_key, p_stream) ON CONFLICT (key) DO NOTHING;
        IF NOT FOUND THEN
            RAISE EXCEPTION USING ERRCODE = 'IDL02', MESSAGE = v_key;
        END IF;
    END LOOP;

    v_pos := pg_current_xact_id()::text::bigint << 20;
    INSERT INTO events (position, event_id, stream_id, stream_version, event_type, schema_version, data, metadata, recorded_at)
    SELECT v_pos | (i - 1), p_ids[i], p_stream, v_cur + i, p_types[i], p_schema_versions[i], p_data[i]::json, p_metadata[i]::jsonb, v_now
    FROM generate_subscripts(p_ids, 1) AS i;

    RETURN QUERY SELECT v_cur + 1, v_cur + n, v_pos, v_pos | (n - 1), v_now;
END
$fn$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION idlog_append;
DROP TABLE checkpoints;
DROP TABLE unique_keys;
DROP TABLE events;
