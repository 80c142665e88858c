-- Whether an administrator turned a user's sign-in off (LoginDisabled), a flag beside the state,
-- for the users read model (projections.UsersView).

-- +goose Up
ALTER TABLE users ADD COLUMN login_disabled boolean NOT NULL DEFAULT false;

-- +goose Down
ALTER TABLE users DROP COLUMN login_disabled;
