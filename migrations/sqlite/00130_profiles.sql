-- The profiles read model (projections.UserProfilesView): each user's profile (Barong's Profile
-- with company, VAT id and locale) and their settings, one row per user per generation (see
-- 00010). state is '' for a user with settings and no profile. Every column but the keys and times
-- is personal data. Queries read the live generation only. Times are unix microseconds.

-- +goose Up
CREATE TABLE user_profiles (
    generation INTEGER NOT NULL,
    uid        TEXT NOT NULL,
    state      TEXT NOT NULL DEFAULT '',
    first_name TEXT NOT NULL DEFAULT '',
    last_name  TEXT NOT NULL DEFAULT '',
    dob        TEXT NOT NULL DEFAULT '',
    address    TEXT NOT NULL DEFAULT '',
    postcode   TEXT NOT NULL DEFAULT '',
    city       TEXT NOT NULL DEFAULT '',
    country    TEXT NOT NULL DEFAULT '',
    company    TEXT NOT NULL DEFAULT '',
    vat_id     TEXT NOT NULL DEFAULT '',
    locale     TEXT NOT NULL DEFAULT '',
    metadata   TEXT,
    settings   TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (generation, uid)
);
-- Administrators filter users by name and country.
CREATE INDEX user_profiles_country ON user_profiles (generation, country);
CREATE INDEX user_profiles_last_name ON user_profiles (generation, lower(last_name));

-- +goose Down
DROP TABLE user_profiles;
