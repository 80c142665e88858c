-- The append-only event log. Rows of events are never updated or deleted by idlog.
--
-- Global order: position = (transaction id << 20) | index of the event in its append. Readers of
-- the global log only read positions below (xmin of their snapshot << 20): every transaction with
-- a lower id has then committed or aborted, so no event can later appear below a position a
-- follower has already passed (the bigserial visibility gap). Appends never wait for each other
-- unless they touch the same stream or unique key.

-- +goose Up
CREATE TABLE streams (
    stream_id text COLLATE "C" PRIMARY KEY,
    version   bigint NOT NULL CHECK (version > 0)
);

CREATE TABLE events (
    position       bigint PRIMARY KEY,
    event_id       uuid NOT NULL UNIQUE,
    stream_id      text COLLATE "C" NOT NULL,
    stream_version bigint NOT NULL CHECK (stream_version > 0),
    event_type     text NOT NULL,
    schema_version int NOT NULL CHECK (schema_version > 0),
    data           json NOT NULL, -- json, not jsonb: the exact bytes appended are kept
    metadata       json NOT NULL,
    recorded_at    timestamptz NOT NULL,
    UNIQUE (stream_id, stream_version)
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

-- idlog_append performs one whole append in one statement. Errors carry SQLSTATE IDL01 (wrong
-- expected version), IDL02 (unique key taken; the message is the key) or IDL03 (event id stored
-- by another append).
-- +goose StatementBegin
CREATE FUNCTION idlog_append(
    p_stream text, p_expected bigint,
    p_ids uuid[], p_types text[], p_schema_versions int[], p_data text[], p_metadata text[],
    p_claims text[], p_releases text[]
) RETURNS TABLE (first_version bigint, last_version bigint, first_position bigint, last_position bigint, recorded_at timestamptz)
LANGUAGE plpgsql AS $fn$
DECLARE
    n       int := cardinality(p_ids);
    v_last  bigint;
    v_cur   bigint;
    v_base  bigint;
    v_key   text;
    v_pos   bigint;
    v_now   timestamptz := now();
BEGIN
    -- A faithful retry of an append that is already stored returns the original result.
    IF EXISTS (SELECT 1 FROM events e WHERE e.event_id = p_ids[1]) THEN
        RETURN QUERY
            SELECT min(e.stream_version), max(e.stream_version), min(e.position), max(e.position), min(e.recorded_at)
            FROM events e
            WHERE e.event_id = ANY (p_ids)
            HAVING count(*) = n
               AND bool_and(e.stream_id = p_stream)
               AND bool_and(e.stream_version - (SELECT min(x.stream_version) FROM events x WHERE x.event_id = ANY (p_ids))
                            = array_position(p_ids, e.event_id) - 1);
        IF NOT FOUND THEN
            RAISE EXCEPTION USING ERRCODE = 'IDL03', MESSAGE = 'event ids already stored by another append';
        END IF;
        RETURN;
    END IF;

    IF p_expected = -1 THEN
        INSERT INTO streams AS s (stream_id, version) VALUES (p_stream, n)
        ON CONFLICT (stream_id) DO UPDATE SET version = s.version + n
        RETURNING s.version INTO v_last;
    ELSIF p_expected = 0 THEN
        INSERT INTO streams (stream_id, version) VALUES (p_stream, n)
        ON CONFLICT (stream_id) DO NOTHING
        RETURNING version INTO v_last;
        IF v_last IS NULL THEN
            SELECT s.version INTO v_cur FROM streams s WHERE s.stream_id = p_stream;
            RAISE EXCEPTION USING ERRCODE = 'IDL01', MESSAGE = coalesce(v_cur, 0)::text;
        END IF;
    ELSE
        UPDATE streams s SET version = s.version + n
        WHERE s.stream_id = p_stream AND s.version = p_expected
        RETURNING s.version INTO v_last;
        IF v_last IS NULL THEN
            SELECT s.version INTO v_cur FROM streams s WHERE s.stream_id = p_stream;
            RAISE EXCEPTION USING ERRCODE = 'IDL01', MESSAGE = coalesce(v_cur, 0)::text;
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

    v_base := v_last - n;
    v_pos := pg_current_xact_id()::text::bigint << 20;
    INSERT INTO events (position, event_id, stream_id, stream_version, event_type, schema_version, data, metadata, recorded_at)
    SELECT v_pos | (i - 1), p_ids[i], p_stream, v_base + i, p_types[i], p_schema_versions[i], p_data[i]::json, p_metadata[i]::json, v_now
    FROM generate_subscripts(p_ids, 1) AS i;

    RETURN QUERY SELECT v_base + 1, v_last, v_pos, v_pos | (n - 1), v_now;
END
$fn$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION idlog_append;
DROP TABLE checkpoints;
DROP TABLE unique_keys;
DROP TABLE events;
DROP TABLE streams;
