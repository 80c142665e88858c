-- idlog_append_keyed is idlog_append that first stores the user's new data key (package
-- personaldata, table personal_data_keys of migration 00180) in the same transaction, in one round
-- trip: a user's key exists exactly when their first sealed append does, and a failed append
-- leaves no key behind. A user who has a key row already (an erased one included) fails it with
-- IDL03 (the message is the user id) before anything is written: the caller reads the stored key
-- and seals again. The row is never overwritten, so an erased key stays erased.

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION idlog_append_keyed(
    p_uid text, p_wrapped bytea,
    p_stream text, p_expected bigint,
    p_ids uuid[], p_types text[], p_schema_versions int[], p_data text[], p_metadata text[],
    p_claims text[], p_releases text[]
) RETURNS TABLE (first_version bigint, last_version bigint, first_position bigint, last_position bigint, recorded_at timestamptz)
LANGUAGE plpgsql AS $fn$
BEGIN
    INSERT INTO personal_data_keys (uid, wrapped) VALUES (p_uid, p_wrapped) ON CONFLICT (uid) DO NOTHING;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'IDL03', MESSAGE = p_uid;
    END IF;
    RETURN QUERY SELECT * FROM idlog_append(p_stream, p_expected, p_ids, p_types, p_schema_versions, p_data, p_metadata, p_claims, p_releases);
END
$fn$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION idlog_append_keyed;
