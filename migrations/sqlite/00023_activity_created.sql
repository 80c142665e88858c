-- The activity read model by time, for the period counts of projections.ActivityView.UserMetrics
-- (GET /api/v2/admin/metrics).

-- +goose Up
CREATE INDEX activity_created ON activity (generation, created_at);

-- +goose Down
DROP INDEX activity_created;
