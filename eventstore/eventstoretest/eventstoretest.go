// Package eventstoretest is the conformance suite every eventstore adapter passes:
// eventstoretest.Run(t, factory). A backend declares what it can do in Features; the suite skips,
// and says so, what a backend does not promise, instead of forking the tests.
package eventstoretest

import (
	"context"
	"testing"

	"github.com/idlog/idlog/eventstore"
)

// Hooks lets the suite reach inside an adapter's write path.
type Hooks struct {
	// BeforeCommit, when set, is called inside the append's database transaction after its rows
	// are written and before it commits. The suite uses it to hold transactions open for a random
	// delay and so provoke late commits with low positions.
	BeforeCommit func(ctx context.Context, a eventstore.Append)
}

// Features says what a backend promises beyond the Store contract.
type Features struct {
	// BeforeCommitHook: the adapter honours Hooks.BeforeCommit.
	BeforeCommitHook bool
	// Checkpoints: the store also implements eventstore.Checkpoints.
	Checkpoints bool
	// KeyOwners: the store also implements eventstore.KeyOwners.
	KeyOwners bool
	// GlobalEventIDs: an event id is unique across the whole log, so appending stored ids to
	// another stream fails. EventStoreDB only knows ids per stream.
	GlobalEventIDs bool
}

// Backend opens stores for the suite.
type Backend struct {
	Features Features
	// New returns a store over fresh, empty storage of its own (a new schema, file or stream
	// namespace), and a function that opens that same storage again after the first store was
	// closed. Cleanup (dropping the storage) is the backend's business, through t.Cleanup.
	New func(t *testing.T, h Hooks) (s eventstore.Store, reopen func(t *testing.T) eventstore.Store)
}
