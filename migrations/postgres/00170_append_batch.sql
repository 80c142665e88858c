-- idlog_append_at is idlog_append for many appends in one transaction (postgres.Store.AppendBatch,
-- used by idlog users import): the same checks and writes, with the events' index inside the
-- transaction starting at p_offset instead of 0, so the appends of one transaction get distinct,
-- increasing positions (xid << 20 | index).

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION idlog_append_at(
    p_offset int, p_stream text, p_expected bigint,
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
    IF p_offset < 0 OR p_offset + n > 1048576 THEN
        RAISE EXCEPTION 'idlog_append_at: events % to % do not fit in one transaction', p_offset, p_offset + n;
    END IF;
    IF p_expected <> 0 THEN
        SELECT e.stream_version INTO v_cur FROM events e
        WHERE e.stream_id = p_stream ORDER BY e.stream_version DESC LIMIT 1;
        v_cur := coalesce(v_cur, 0);
        IF p_expected > 0 AND v_cur <> p_expected THEN
            RAISE EXCEPTION USING ERRCODE = 'IDL01', MESSAGE = v_cur::text;
        END IF;
    END IF;

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
    SELECT v_pos | (p_offset + i - 1), p_ids[i], p_stream, v_cur + i, p_types[i], p_schema_versions[i], p_data[i]::json, p_metadata[i]::jsonb, v_now
    FROM generate_subscripts(p_ids, 1) AS i;

    RETURN QUERY SELECT v_cur + 1, v_cur + n, v_pos | p_offset, v_pos | (p_offset + n - 1), v_now;
END
$fn$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION idlog_append_at;
