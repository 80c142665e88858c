// Package courier delivers the messages idlog owes people (email confirmation and password reset
// codes, security notices) from the outbox table, where commands queue them sealed in the same
// transaction as the events that cause them (eventstore.Append.Outbox, commands.Deps.Outbox).
//
// One process at a time delivers, across replicas, under a follower lease (package lease) whose
// fencing token every write of the queue checks. Delivery is at least once: a message is deleted
// only after its sender accepted it, and a crash in between sends it again with the same id, which
// senders pass on as their idempotent send key (the e-mail Message-ID, an Idempotency-Key header),
// so a provider that dedups sends it once. A failed send is retried with exponential backoff, and
// after MaxAttempts the message is dead: kept, not retried, until it expires.
//
// Senders: SMTP (go-mail), a local Mailbox directory (the default when no SMTP server is
// configured, read with `idlog courier ls|show`), SMS over HTTP (Twilio-compatible form POST or a
// JSON webhook), and a hand-off to NATS. Messages are rendered from text and HTML templates per
// locale, embedded and overridable from a directory.
package courier
