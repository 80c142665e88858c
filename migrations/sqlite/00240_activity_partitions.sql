-- PostgreSQL only: the activity read model partitioned by generation (see the PostgreSQL
-- migration of the same number). SQLite has no partitions; its rebuilds write in large
-- transactions.

-- +goose Up
SELECT 1;

-- +goose Down
SELECT 1;
