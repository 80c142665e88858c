-- Nothing for SQLite: PostgreSQL's 00170 adds idlog_append_at for batched appends; the SQLite
-- store's writer already commits concurrent appends together. The number is kept in step.

-- +goose Up
SELECT 1;

-- +goose Down
SELECT 1;
