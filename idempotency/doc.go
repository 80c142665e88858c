// Package idempotency keeps the claims of requests that carry an idempotency key and the first
// answer to each, so that a retry, on any replica and at any time within the retention, gets
// that answer again and runs nothing.
//
// A Keeper decides who runs a claim: the first request takes it (Begin returns a Claim, which
// it completes with its answer or releases when it failed); a request with the same claim and
// the same fingerprint gets the answer (or waits while the first still runs: in this process
// it is woken at once, across processes it polls); a request with the same claim and another
// fingerprint gets ErrKeyReused. The Store holds the claims: SQLStore in the event store's
// database (PostgreSQL or SQLite, migrations/*/00004), MemoryStore in one process.
//
// The package never sees keys or bodies: claims and fingerprints are keyed hashes, answers
// opaque (sealed) bytes, all made by the caller (package api).
package idempotency
