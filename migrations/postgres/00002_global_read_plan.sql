-- Pages of the unfiltered global log, read by every follower (projections, relay, sealer, export).
-- They must walk events_pkey in order: before the planner has statistics for events (a fresh or
-- freshly loaded table, until autovacuum analyzes it), it prefers a bitmap scan of everything after
-- the position plus a sort, for every page, which makes catching up quadratic. The function's own
-- settings rule that plan out for this query alone.

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION idlog_global_page(p_after bigint, p_limit int) RETURNS SETOF events
LANGUAGE sql STABLE
SET enable_sort = off
SET enable_bitmapscan = off
AS $fn$
    SELECT * FROM events
    WHERE position > p_after
      AND position < (SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint << 20)
    ORDER BY position
    LIMIT p_limit
$fn$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION idlog_global_page;
