-- The profiles read model (projections.UserProfilesView): each user's profile (Barong's Profile
-- with company, VAT id and locale) and their settings, one row per user per generation (see
-- 00010). state is '' for a user with settings and no profile. Every column but the keys and times
-- is personal data. Queries read the live generation only.

-- +goose Up
CREATE TABLE user_profiles (
    generation bigint NOT NULL,
    uid        text COLLATE "C" NOT NULL,
    state      text NOT NULL DEFAULT '',
    first_name text NOT NULL DEFAULT '',
    last_name  text NOT NULL DEFAULT '',
    dob        text NOT NULL DEFAULT '',
    address    text NOT NULL DEFAULT '',
    postcode   text NOT NULL DEFAULT '',
    city       text NOT NULL DEFAULT '',
    country    text NOT NULL DEFAULT '',
    company    text NOT NULL DEFAULT '',
    vat_id     text NOT NULL DEFAULT '',
    locale     text NOT NULL DEFAULT '',
    metadata   text,
    settings   text,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (generation, uid)
);
-- Administrators filter users by name and country.
CREATE INDEX user_profiles_country ON user_profiles (generation, country);
CREATE INDEX user_profiles_last_name ON user_profiles (generation, lower(last_name));

-- +goose Down
DROP TABLE user_profiles;
