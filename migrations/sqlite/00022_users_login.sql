-- Whether an administrator turned a user's sign-in off (LoginDisabled), a flag beside the state,
-- for the users read model (projections.UsersView).

-- +goose Up
ALTER TABLE users ADD COLUMN login_disabled INTEGER NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE users DROP COLUMN login_disabled;
