-- The KYC read model (projections.KYCView): each user's phones, identity documents (their
-- metadata; the files are in the blob store, named by sha256) and data storage records, one row
-- each per generation (see 00010). number, doc_number, metadata and data are personal data.
-- Queries read the live generation only. Times are unix microseconds.

-- +goose Up
CREATE TABLE user_phones (
    generation   INTEGER NOT NULL,
    uid          TEXT NOT NULL,
    number       TEXT NOT NULL,
    country      TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    validated_at INTEGER,
    PRIMARY KEY (generation, uid, number)
);
CREATE TABLE user_documents (
    generation   INTEGER NOT NULL,
    id           TEXT NOT NULL,
    uid          TEXT NOT NULL,
    doc_type     TEXT NOT NULL,
    doc_number   TEXT NOT NULL,
    doc_expire   TEXT NOT NULL DEFAULT '',
    metadata     TEXT,
    content_type TEXT NOT NULL,
    size         INTEGER NOT NULL,
    sha256       TEXT NOT NULL,
    state        TEXT NOT NULL,
    reason       TEXT NOT NULL DEFAULT '',
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (generation, id)
);
CREATE INDEX user_documents_uid ON user_documents (generation, uid);
-- Administrators list the users with documents waiting for review.
CREATE INDEX user_documents_state ON user_documents (generation, state, created_at);
CREATE TABLE user_data_storage (
    generation INTEGER NOT NULL,
    uid        TEXT NOT NULL,
    title      TEXT NOT NULL,
    data       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (generation, uid, title)
);

-- +goose Down
DROP TABLE user_data_storage;
DROP TABLE user_documents;
DROP TABLE user_phones;
