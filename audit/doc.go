// Package audit proves that idlog's event log was not altered after the fact, and moves a whole
// history between event stores.
//
// Every event of the global log is covered by a hash chain over its canonical bytes (see
// AppendCanonical) and its ordinal, its place in the global order counted from 1. The ordinal,
// not the backend's position, is chained, so a history moved to another backend keeps its chain:
//
//	chain_0 = 32 zero bytes
//	chain_i = SHA-256(chain_{i-1} || canonical_i)
//
// A Sealer follows the committed log and writes one row per event (ordinal, position, event id,
// chain) into the audit ledger (migrations 00060, in the store's own database), and every so many
// events or seconds a sealed Checkpoint (ordinal, position, chain head, time), which it hands to a
// CheckpointPublisher so that a party outside the database holds a copy. Sealing follows the log;
// it never holds up an append.
//
// Beside the chain the sealer keeps an RFC 6962 Merkle tree over the same canonical bytes (see
// LeafHash; stored in tiles of the levels 0, 8, 16..., migrations 00120 and 00200) and records its
// root in every checkpoint, signed with the audit key as a note (TreeHead) when the sealer has one
// (SealerOptions.Signer); a Witness posts each signed checkpoint, with a consistency proof, to a
// witness outside idlog. The ledger serves inclusion and consistency proofs; CheckInclusion and CheckConsistency check them with no
// database; VerifyCheckpoints rebuilds the tree from the events alone and compares it with signed
// checkpoints kept outside the database, which catches a log rewritten with its ledger and resealed.
//
// Verify recomputes the chain from ordinal 1 over the log and reports the first event that does
// not match the ledger: changed, deleted, inserted or reordered. Export writes the log as NDJSON
// with ordinals and chain values; Import checks that chain while it writes the history into an
// empty store through the store's Importer.
//
// What the chain does not see: a store keeps no more than the envelope's fields, so a metadata
// key outside eventstore.Metadata, written into the database by hand, is invisible to the chain
// (and to every reader). Anyone with write access to the database can rewrite both the log and the
// ledger consistently; the published signed checkpoints are what catches that (VerifyCheckpoints).
package audit
