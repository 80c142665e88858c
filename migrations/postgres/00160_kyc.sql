-- The KYC read model (projections.KYCView): each user's phones, identity documents (their
-- metadata; the files are in the blob store, named by sha256) and data storage records, one row
-- each per generation (see 00010). number, doc_number, metadata and data are personal data.
-- Queries read the live generation only.

-- +goose Up
CREATE TABLE user_phones (
    generation   bigint NOT NULL,
    uid          text COLLATE "C" NOT NULL,
    number       text NOT NULL,
    country      text NOT NULL,
    created_at   timestamptz NOT NULL,
    validated_at timestamptz,
    PRIMARY KEY (generation, uid, number)
);
CREATE TABLE user_documents (
    generation   bigint NOT NULL,
    id           text COLLATE "C" NOT NULL,
    uid          text COLLATE "C" NOT NULL,
    doc_type     text NOT NULL,
    doc_number   text NOT NULL,
    doc_expire   text NOT NULL DEFAULT '',
    metadata     text,
    content_type text NOT NULL,
    size         bigint NOT NULL,
    sha256       text NOT NULL,
    state        text NOT NULL,
    reason       text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    PRIMARY KEY (generation, id)
);
CREATE INDEX user_documents_uid ON user_documents (generation, uid);
-- Administrators list the users with documents waiting for review.
CREATE INDEX user_documents_state ON user_documents (generation, state, created_at);
CREATE TABLE user_data_storage (
    generation bigint NOT NULL,
    uid        text COLLATE "C" NOT NULL,
    title      text NOT NULL,
    data       text NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (generation, uid, title)
);

-- +goose Down
DROP TABLE user_data_storage;
DROP TABLE user_documents;
DROP TABLE user_phones;
