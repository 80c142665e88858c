-- Per-user data keys of personal data (package personaldata): the key that seals the personal
-- fields of a user's events, wrapped (AES-256-GCM) with a key derived from the server's secret
-- key. It lives outside the log so that erasing the user destroys it (wrapped becomes NULL,
-- erased_at is set) and the sealed fields can no longer be read, while the log and every proof
-- over it stay as they were. A row with erased_at and no key may also stand for a user whose
-- events were written before sealing existed: readers then show their personal fields as erased.

-- +goose Up
CREATE TABLE personal_data_keys (
    uid        TEXT PRIMARY KEY,
    wrapped    BLOB,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    erased_at  TEXT,
    CHECK ((wrapped IS NULL) = (erased_at IS NOT NULL))
);

-- +goose Down
DROP TABLE personal_data_keys;
