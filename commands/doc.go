// Package commands holds idlog's write side: one command type and one handler per file, gathered
// in Application. A handler loads the user from its event stream, lets the domain decide, and
// appends the resulting events with the expected stream version; a concurrent change makes it
// reload and decide again, a bounded number of times (then ErrConflict).
//
// Handlers read only the event store, never a read model: a user is found by email or username
// through the unique keys its appends claimed (eventstore.KeyOwners), which are never behind the
// log. Passwords, one-shot tokens and TOTP secrets go through package auth; only their hashes or
// ciphertext reach events, and the plain tokens go, sealed, into the store's outbox in the same
// append (Deps.Outbox, delivered by package courier), or else to a Notifier; never to a log.
// Security notices (password changed, 2FA off, email changed, sign-in from a new address) go to
// the outbox the same way.
//
// Idempotency: a command whose Meta carries an idempotency key claims the unique key
// "idempotency:<sha256(command, actor, key)>" in the same append as its events, and derives its
// event ids from the same hash. A retry finds the claim (or loses the race for it) and appends
// nothing; its result says Replayed, and carries the current state of the user. From HTTP the key
// is never the client's: the API derives it from the caller, route, client key and body (a keyed
// hash), so a claim never crosses from one request to another, anonymous callers included; and
// the API keeps the first answer durably to replay it (package idempotency).
package commands
