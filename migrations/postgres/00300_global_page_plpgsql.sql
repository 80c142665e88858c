-- idlog_global_page (migration 00002) again, in PL/pgSQL. A SQL function with SET clauses is never
-- inlined, and PostgreSQL before 18 plans its query again at every call: measured with pgbench on
-- one connection, the call cost about four times the server time of the bare query. Every
-- follower's read of the log goes through it, about one read per append under a sign-in load.
-- PL/pgSQL keeps its query's plan for the session, made under the function's own settings, so the
-- plan still walks events_pkey in order whatever the planner's statistics.

-- +goose Up
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION idlog_global_page(p_after bigint, p_limit int) RETURNS SETOF events
LANGUAGE plpgsql STABLE
SET enable_sort = off
SET enable_bitmapscan = off
AS $fn$
BEGIN
    RETURN QUERY SELECT * FROM events
    WHERE position > p_after
      AND position < (SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint << 20)
    ORDER BY position
    LIMIT p_limit;
END
$fn$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION idlog_global_page(p_after bigint, p_limit int) RETURNS SETOF events
LANGUAGE sql STABLE
SET enable_sort = off
SET enable_bitmapscan = off
AS $fn$
    SELECT * FROM events
    WHERE position > p_after
      AND position < (SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint << 20)
    ORDER BY position
    LIMIT p_limit;
$fn$;
-- +goose StatementEnd
