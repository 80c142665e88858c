// Package projections keeps idlog's SQL read models in step with the event log, and holds the
// read models with their queries: UsersView (the current view of each user), ActivityView (one
// row per user-visible event), LabelsView (the labels users hold), WalletView (balances and the
// movements that make them) and SessionsView (the open sessions of each user).
//
// A Runtime runs one goroutine per Projector. Each follows the global log from its checkpoint:
// it catches up in large batches, then follows the store's subscription live. A batch's read-model
// writes and the new checkpoint commit in one transaction, so after any crash every event's
// effect is held exactly once. A projector that fails stops at the failing event and retries with
// backoff, visible in Status, the log and the metrics, without holding back the others.
//
// Rebuilds run beside the live tables: every read-model table has a generation column, a rebuild
// fills a new generation from position 0 and, once it has caught up with the live one, one update
// of projection_generations swaps it in; queries read the live generation only. Read models live
// in the event store's database (the same Postgres database, or the same SQLite file), with their
// schema in migrations/postgres and migrations/sqlite.
package projections
