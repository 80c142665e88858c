// Package personaldata keeps the personal data of the event log erasable without touching the log
// (crypto-shredding).
//
// Every user has a data key, kept outside the log in the store's own database (PostgreSQL:
// personal_data_keys; SQLite: the row of the user's stream in streams, with older keys and every
// erasure in personal_data_keys), wrapped with a key derived from the server's secret key. Store wraps an
// event store: on append it seals, with the user's data key, the personal fields of the events of
// the user's stream (the fields their Go type tags `personal:"true"`, see domain.PersonalTag) and
// the IP address and user agent of the envelope; on read it opens them. The stored bytes are the
// sealed ones, so the audit chain and the Merkle tree, which read the store underneath, hash
// ciphertext: erasing the user (Keys.Erase destroys the key) leaves every checkpoint and proof
// valid, and readers through Store see "[erased]" in place of the user's personal fields from
// then on. Events written before sealing existed hold plain values: Store shows them as
// "[erased]" too once the user is erased, but the stored bytes keep them.
//
// Unique keys (email, username) are claimed as keyed hashes (HMAC-SHA-256 with a key derived from
// the server's secret key): the unique_keys table never holds an address in plain, and releasing
// a key at erasure leaves nothing behind. Open rewrites the plain keys of older stores once.
package personaldata
