// Package eventstore holds idlog's append-only event log: the Store contract, the envelope every
// stored event carries, and the errors adapters return. Adapters live in sub-packages (postgres,
// sqlite, esdb) and all pass the same conformance suite, eventstoretest.Run.
package eventstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"time"

	"github.com/google/uuid"
)

// MaxEventsPerAppend bounds one append. Postgres packs the index of an event inside its
// transaction into the low 20 bits of the global position, and no identity command needs more.
const MaxEventsPerAppend = 10000

// Sentinel errors. Adapters wrap them with context; callers test with errors.Is.
var (
	// ErrConcurrency: the stream was not at the expected version.
	ErrConcurrency = errors.New("eventstore: wrong expected version")
	// ErrKeyTaken: a unique key the append claims is held by another claim. See KeyTakenError.
	ErrKeyTaken = errors.New("eventstore: unique key already claimed")
	// ErrDuplicateEvent: some, but not all, of an append's event ids are already stored, or they
	// are stored in another stream: the append is neither new nor a faithful retry.
	ErrDuplicateEvent = errors.New("eventstore: event id already stored by another append")
	// ErrInvalidAppend: the append itself is malformed (no events, empty type, bad JSON, ...).
	ErrInvalidAppend = errors.New("eventstore: invalid append")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("eventstore: store is closed")
)

// KeyTakenError names the unique key that could not be claimed. errors.Is(err, ErrKeyTaken) holds.
type KeyTakenError struct{ Key string }

func (e *KeyTakenError) Error() string {
	return fmt.Sprintf("eventstore: unique key %q already claimed", e.Key)
}

// Is makes errors.Is(err, ErrKeyTaken) true.
func (e *KeyTakenError) Is(target error) bool { return target == ErrKeyTaken }

// ExpectedVersion is the version a stream must be at for an append to succeed: Any, NoStream, or
// a positive version (the version of the stream's last event; a stream's first event is version 1).
type ExpectedVersion int64

const (
	// Any accepts the stream at whatever version it is, including not existing.
	Any ExpectedVersion = -1
	// NoStream requires that the stream has no event yet.
	NoStream ExpectedVersion = 0
)

// Exactly expects the stream's last event to be version v. Exactly(0) is NoStream.
func Exactly(v uint64) ExpectedVersion { return ExpectedVersion(v) }

func (e ExpectedVersion) String() string {
	switch {
	case e == Any:
		return "any"
	case e == NoStream:
		return "no stream"
	case e > 0:
		return fmt.Sprintf("version %d", int64(e))
	default:
		return fmt.Sprintf("invalid expected version %d", int64(e))
	}
}

// Metadata travels with every event; the activity log and the audit trail are built from it.
type Metadata struct {
	ActorUID       string `json:"actor_uid,omitempty"`
	ActorRole      string `json:"actor_role,omitempty"`
	IP             string `json:"ip,omitempty"`
	UserAgent      string `json:"user_agent,omitempty"`
	CorrelationID  string `json:"correlation_id,omitempty"`
	CausationID    string `json:"causation_id,omitempty"`
	IdempotencyKey string `json:"idempotency_key,omitempty"`
}

// ActorSystem is the actor of changes nobody asked for (sign-up bonuses, level changes, ...).
const ActorSystem = "system"

// ActorImport is the actor of the events that bring users from another system (idlog users
// import), so the activity log and auditors can tell imported history from history made here.
const ActorImport = "import"

// NewEvent is an event to append. ID may be left zero; the store then gives it a UUIDv7.
// Callers that may retry (commands) set it themselves so a retry is recognised as one.
type NewEvent struct {
	ID            uuid.UUID
	Type          string
	SchemaVersion int
	Data          json.RawMessage
	Metadata      Metadata
}

// Event is a stored event: the envelope of DESIGN.md.
type Event struct {
	ID             uuid.UUID
	StreamID       string
	StreamVersion  uint64
	GlobalPosition uint64 // strictly increasing in the global log; not dense
	Type           string
	SchemaVersion  int
	Data           json.RawMessage
	Metadata       Metadata
	RecordedAt     time.Time // UTC, microsecond precision
}

// AppendResult tells where an append landed.
type AppendResult struct {
	FirstVersion  uint64 // the stream version of the first appended event
	LastVersion   uint64 // the stream's version after the append
	FirstPosition uint64
	LastPosition  uint64 // wait for followers to reach this to read your own writes
	RecordedAt    time.Time
}

// Append is one atomic write to one stream: its events and its unique-key claims and releases are
// all stored, or none.
type Append struct {
	Stream   string
	Expected ExpectedVersion
	Events   []NewEvent
	// Claim reserves unique keys (such as "email:alice@example.com") for this stream. A key already
	// claimed, by any stream, fails the whole append with a *KeyTakenError.
	Claim []string
	// Release frees keys this stream holds, so another append can claim them. Releasing a key the
	// stream does not hold changes nothing.
	Release []string
	// Outbox holds messages to people that the events cause (codes, security notices), stored in
	// the same transaction, in the outbox table the courier delivers from. Only stores that
	// implement OutboxKeeper take them; others refuse an append that has some.
	Outbox []OutboxMessage
	// DataKey, if set, is the new data key of the user the stream belongs to (package
	// personaldata), stored in the append's transaction before anything else, so a user's key
	// exists exactly when their first sealed append does. The stream must be the user's,
	// DataKeyStream(UID): a store may keep the key in the stream's own row. If the user has a key
	// already (an erased one included) the append fails with ErrDataKeyExists and stores
	// nothing, even when it is a retry of a stored append. Only stores that implement
	// DataKeyKeeper take it; others refuse an append that has one.
	DataKey *DataKey
}

// DataKeyStream is the stream of the user a data key belongs to (domain.UserID.Stream).
func DataKeyStream(uid string) string { return "user-" + uid }

// DataKey is a user's data key, wrapped by the caller: the store keeps it opaque.
type DataKey struct {
	UID     string
	Wrapped []byte
}

// ErrDataKeyExists: the append carries a data key for a user who has one (or whose key was
// erased). Nothing was stored; the caller reads the stored key and seals again.
var ErrDataKeyExists = errors.New("eventstore: the user has a data key already")

// DataKeyKeeper is a store that writes Append.DataKey in the append's transaction: PostgreSQL in
// table personal_data_keys (migration 00180), SQLite in the stream's row of streams (migration
// 00280), where personaldata.Keys reads it.
type DataKeyKeeper interface {
	KeepsDataKeys() bool
}

// OutboxMessage is one message to a person, queued with the append that causes it. Its payload
// (recipient, one-shot code, template data) is sealed by the caller: the store keeps it opaque.
type OutboxMessage struct {
	// ID identifies the message and is its idempotent send key (the e-mail Message-ID): a
	// delivery retried after a crash carries the same one.
	ID        uuid.UUID
	Kind      string // what is said: "email_confirmation", "password_changed", ...
	Channel   string // how: "email" or "sms"
	UID       string // whom it is about
	Sealed    []byte
	CreatedAt time.Time
	ExpiresAt time.Time // past it the message is dropped undelivered
}

// OutboxKeeper is a store that writes Append.Outbox in the append's transaction.
type OutboxKeeper interface {
	KeepsOutbox() bool
}

// validateOutbox checks the outbox messages of an append.
func (a Append) validateOutbox() error {
	for i, m := range a.Outbox {
		if m.ID == uuid.Nil || m.Kind == "" || m.Channel == "" || len(m.Sealed) == 0 || m.ExpiresAt.IsZero() {
			return fmt.Errorf("%w: outbox message %d lacks an id, kind, channel, payload or expiry", ErrInvalidAppend, i)
		}
	}
	return nil
}

// Filter narrows a read of the global log. The zero Filter matches every event.
type Filter struct {
	Types        []string // any of these event types; empty means all
	StreamPrefix string   // stream ids starting with this; empty means all
}

// Match reports whether e passes the filter. Adapters that cannot filter server-side use it.
func (f Filter) Match(e Event) bool {
	if f.StreamPrefix != "" && (len(e.StreamID) < len(f.StreamPrefix) || e.StreamID[:len(f.StreamPrefix)] != f.StreamPrefix) {
		return false
	}
	if len(f.Types) == 0 {
		return true
	}
	for _, t := range f.Types {
		if t == e.Type {
			return true
		}
	}
	return false
}

// Store is the append-only event log. Implementations are safe for concurrent use.
//
// Reads are iterators: they fetch in pages, so memory stays flat for any log size. An iterator
// that fails yields a zero Event and the error once, then stops. The global log is delivered in
// global-position order, and a position is only delivered once every event that could still
// commit below it has committed or failed: a follower that resumes after the last position it saw
// never misses an event.
type Store interface {
	// Append writes a.Events to a.Stream if the stream is at a.Expected. A wrong version returns an
	// error matching ErrConcurrency and stores nothing. Re-appending events whose ids are all already
	// stored, in the same stream and order, stores nothing and returns the original result.
	Append(ctx context.Context, a Append) (AppendResult, error)
	// ReadStream yields the events of one stream with a version above afterVersion, in order.
	ReadStream(ctx context.Context, stream string, afterVersion uint64) iter.Seq2[Event, error]
	// ReadAll yields the events of the global log after position `after` that pass the filter, up to
	// the end of the log as it is when the read reaches it, then stops.
	ReadAll(ctx context.Context, after uint64, f Filter) iter.Seq2[Event, error]
	// Subscribe is ReadAll that does not stop at the end: it catches up, then follows new events
	// live, until ctx ends (it then yields ctx's error) or the store closes (ErrClosed).
	Subscribe(ctx context.Context, after uint64, f Filter) iter.Seq2[Event, error]
	// Close releases the store. Calls after Close return ErrClosed.
	Close() error
}

// Validate checks an append before any adapter touches storage. Adapters call it first. Every
// text of the append must be valid UTF-8 without NUL (ErrInvalidText).
func (a Append) Validate() error {
	if a.Stream == "" {
		return fmt.Errorf("%w: empty stream id", ErrInvalidAppend)
	}
	if a.Expected < Any {
		return fmt.Errorf("%w: %s", ErrInvalidAppend, a.Expected)
	}
	if len(a.Events) == 0 {
		return fmt.Errorf("%w: no events for stream %q", ErrInvalidAppend, a.Stream)
	}
	if len(a.Events) > MaxEventsPerAppend {
		return fmt.Errorf("%w: %d events in one append, at most %d", ErrInvalidAppend, len(a.Events), MaxEventsPerAppend)
	}
	seen := make(map[uuid.UUID]bool, len(a.Events))
	for i, e := range a.Events {
		if e.Type == "" {
			return fmt.Errorf("%w: event %d has no type", ErrInvalidAppend, i)
		}
		if e.SchemaVersion < 1 {
			return fmt.Errorf("%w: event %d (%s) has schema version %d, want >= 1", ErrInvalidAppend, i, e.Type, e.SchemaVersion)
		}
		if !json.Valid(e.Data) {
			return fmt.Errorf("%w: event %d (%s) data is not valid JSON", ErrInvalidAppend, i, e.Type)
		}
		if e.ID != uuid.Nil {
			if seen[e.ID] {
				return fmt.Errorf("%w: event id %s appears twice", ErrInvalidAppend, e.ID)
			}
			seen[e.ID] = true
		}
	}
	for _, k := range append(append([]string(nil), a.Claim...), a.Release...) {
		if k == "" {
			return fmt.Errorf("%w: empty unique key", ErrInvalidAppend)
		}
	}
	if err := a.validateOutbox(); err != nil {
		return err
	}
	if a.DataKey != nil && (a.DataKey.UID == "" || len(a.DataKey.Wrapped) == 0) {
		return fmt.Errorf("%w: data key without a user id or key", ErrInvalidAppend)
	}
	if a.DataKey != nil && a.Stream != DataKeyStream(a.DataKey.UID) {
		return fmt.Errorf("%w: the data key of user %q appended to %q, not to their stream %q", ErrInvalidAppend, a.DataKey.UID, a.Stream, DataKeyStream(a.DataKey.UID))
	}
	// Last: the only check that reads every byte.
	return a.checkText()
}

// WithIDs returns the events with every zero id replaced by a new UUIDv7. Adapters call it so the
// ids are known before the write and a retried append can be recognised.
func WithIDs(events []NewEvent) ([]NewEvent, error) {
	out := make([]NewEvent, len(events))
	for i, e := range events {
		if e.ID == uuid.Nil {
			id, err := uuid.NewV7()
			if err != nil {
				return nil, fmt.Errorf("eventstore: new event id: %w", err)
			}
			e.ID = id
		}
		out[i] = e
	}
	return out, nil
}

// Failed is an iterator that yields err once. Adapters return it for calls that cannot start.
func Failed(err error) iter.Seq2[Event, error] {
	return func(yield func(Event, error) bool) { yield(Event{}, err) }
}

// HorizonWaker is a store whose live reads see an event only once every transaction that could
// still commit below it has ended (PostgreSQL): a follower whose own write transaction may have
// held back the log calls TransactionEnded after it commits, and reads waiting for that look
// again at once instead of after their pause.
type HorizonWaker interface {
	TransactionEnded()
}

// Checkpoints keeps followers' positions (the NATS relay's, for one) in the store's own database,
// so a follower resumes where it stopped. Projections keep theirs beside their read models instead.
type Checkpoints interface {
	// Checkpoint returns the last position saved under name, 0 if none.
	Checkpoint(ctx context.Context, name string) (uint64, error)
	// SetCheckpoint saves pos under name. When ctx carries a follower's fencing token
	// (follower.WithToken), the PostgreSQL and SQLite stores check it in the write's own
	// transaction (lease.Check) and refuse the write, with an error matching
	// follower.ErrLeaseLost, once another process holds the follower's lease: a stalled owner
	// that wakes up cannot move the checkpoint back.
	SetCheckpoint(ctx context.Context, name string, pos uint64) error
}

// ErrKeyNotClaimed: KeyOwner found no claim of the key.
var ErrKeyNotClaimed = errors.New("eventstore: unique key not claimed")

// KeyOwners answers which stream holds a unique key. Commands use it to find a user by email or
// username without reading a read model: the claims are written in the same transaction as the
// events, so the answer is never behind the log.
type KeyOwners interface {
	// KeyOwner returns the stream holding key, or an error matching ErrKeyNotClaimed.
	KeyOwner(ctx context.Context, key string) (stream string, err error)
}

// Snapshot is the state of a stream's aggregate at a stream version, encoded by the aggregate
// (domain.User.Snapshot). It is a cache of the stream's events, never a source of truth: a reader
// that cannot use one (of another Schema, unreadable, ahead of the stream) rebuilds from the
// events. It holds personal data as the events do, and is erased with them.
type Snapshot struct {
	Version uint64 // the stream version the state was taken at
	Schema  int    // the aggregate's snapshot schema when it was taken
	Data    []byte
}

// Snapshots keeps the latest snapshot of streams in the store's own database. PostgreSQL and
// SQLite implement it; EventStoreDB does not (its users are folded from events, then kept in
// memory).
type Snapshots interface {
	// LoadSnapshot returns the stream's latest snapshot, ok false if it has none.
	LoadSnapshot(ctx context.Context, stream string) (s Snapshot, ok bool, err error)
	// SaveSnapshot replaces the stream's snapshot with s. The last save wins, even an older one:
	// a snapshot behind its stream costs a longer read, and a bad one (unreadable, ahead of the
	// stream) is replaced by the next save instead of staying forever.
	SaveSnapshot(ctx context.Context, stream string, s Snapshot) error
}
