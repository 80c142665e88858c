package commands

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/eventstore"
)

// Defaults of StreamsConfig.
const (
	DefaultMaxAttempts   = 5
	DefaultCacheSize     = 10000
	DefaultSnapshotEvery = 100
)

// Unique keys users claim in the event store.
const (
	emailKeyPrefix    = "email:"
	usernameKeyPrefix = "username:"
)

func emailKey(normalised string) string    { return emailKeyPrefix + normalised }
func usernameKey(normalised string) string { return usernameKeyPrefix + normalised }

// StreamsConfig tunes UserStreams. The zero value takes the defaults.
type StreamsConfig struct {
	// MaxAttempts bounds how many times a command decides and appends when the stream keeps
	// changing under it; then it fails with ErrConflict. 0 means DefaultMaxAttempts.
	MaxAttempts int
	// CacheSize is how many rebuilt users stay in memory, so that loading a user applies only the
	// events appended since. 0 means DefaultCacheSize; negative turns the cache off.
	CacheSize int
	// SnapshotEvery: once a user's stream has grown this many events past their last snapshot,
	// loading them saves a new one, when the store keeps snapshots (eventstore.Snapshots), so that
	// a process that does not have them in memory yet reads the snapshot and the events after it
	// instead of their whole history. 0 means DefaultSnapshotEvery; negative turns snapshots off
	// (those already stored are not read either).
	SnapshotEvery int
	// MaxSessions is how many sessions a user may have open at once; a sign-in beyond it ends the
	// oldest. 0 means domain.DefaultSessionLimit; at most domain.MaxSessionLimit.
	MaxSessions int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Levels is the ladder of label requirements that gives users their level; the zero Levels
	// means domain.DefaultLevels.
	Levels domain.Levels
}

// UserStreams loads users from their event streams and appends the events they decide, with
// optimistic concurrency, unique keys and idempotency. Every handler shares one. It is safe for
// concurrent use.
//
// Loading always reads the store (the events after the version it holds), so a change appended by
// another process is seen at once: the cache of rebuilt users and the snapshots save folding the
// history again, never freshness. A request thus costs the same whatever the user's history.
type UserStreams struct {
	store         eventstore.Store
	keys          eventstore.KeyOwners
	registry      *domain.Registry
	now           func() time.Time
	maxAttempts   int
	cache         *stateCache
	snapshots     eventstore.Snapshots // nil: the store keeps none, or they are turned off
	snapshotEvery uint64
	maxSessions   int
	levels        domain.Levels
	outbox        Outbox // nil: codes go to the Notifier, notices nowhere
}

// UseOutbox makes the changes' messages go to the store's outbox, sealed by o, in the transaction
// of their events. The store must keep one (eventstore.OutboxKeeper). Call it before any command.
func (s *UserStreams) UseOutbox(o Outbox) error {
	if k, ok := s.store.(eventstore.OutboxKeeper); !ok || !k.KeepsOutbox() {
		return fmt.Errorf("commands: the event store %T keeps no outbox", s.store)
	}
	s.outbox = o
	return nil
}

// queuesMessages reports whether messages go to the outbox.
func (s *UserStreams) queuesMessages() bool { return s.outbox != nil }

// NewUserStreams returns the users of store. keys finds the stream holding an email or username;
// the SQL stores implement it (eventstore.KeyOwners). Snapshots are kept in the store if it can
// (eventstore.Snapshots). Nil dependencies are wiring mistakes and panic.
func NewUserStreams(store eventstore.Store, keys eventstore.KeyOwners, registry *domain.Registry, cfg StreamsConfig) (*UserStreams, error) {
	if store == nil || keys == nil || registry == nil {
		panic("commands: NewUserStreams needs a store, its key owners and an event registry")
	}
	if cfg.MaxAttempts < 0 {
		return nil, fmt.Errorf("commands: max attempts (%d) cannot be negative", cfg.MaxAttempts)
	}
	if cfg.MaxSessions < 0 || cfg.MaxSessions > domain.MaxSessionLimit {
		return nil, fmt.Errorf("commands: max sessions (%d) must be between 1 and %d, or 0 for the default", cfg.MaxSessions, domain.MaxSessionLimit)
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.CacheSize == 0 {
		cfg.CacheSize = DefaultCacheSize
	}
	if cfg.SnapshotEvery == 0 {
		cfg.SnapshotEvery = DefaultSnapshotEvery
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Levels.IsZero() {
		cfg.Levels = domain.DefaultLevels()
	}
	s := &UserStreams{store: store, keys: keys, registry: registry, now: cfg.Now, maxAttempts: cfg.MaxAttempts,
		maxSessions: cfg.MaxSessions, levels: cfg.Levels}
	if cfg.CacheSize > 0 {
		s.cache = &stateCache{max: cfg.CacheSize, m: map[domain.UserID]cachedUser{}}
	}
	if snaps, ok := store.(eventstore.Snapshots); ok && cfg.SnapshotEvery > 0 {
		s.snapshots, s.snapshotEvery = snaps, uint64(cfg.SnapshotEvery)
	}
	return s, nil
}

// Now is the clock the commands use.
func (s *UserStreams) Now() time.Time { return s.now() }

// Levels is the level ladder the users' label commands use.
func (s *UserStreams) Levels() domain.Levels { return s.levels }

// load returns the user as their stream stands now, for a command to change: a copy of its own.
// ErrUserNotFound if the stream has no event.
func (s *UserStreams) load(ctx context.Context, uid domain.UserID) (*domain.User, error) {
	u, err := s.current(ctx, uid)
	if err != nil {
		return nil, err
	}
	return u.Clone(), nil
}

// current returns the user as their stream stands now, shared with other callers: read it, never
// call its commands (load gives a copy for that). It starts from the user cached in memory, or
// else from the stored snapshot, and applies the events stored after it: one read of the store,
// whatever the length of the history.
func (s *UserStreams) current(ctx context.Context, uid domain.UserID) (*domain.User, error) {
	base, cached := s.cache.get(uid)
	if !cached {
		base = s.restore(ctx, uid)
	}
	u, err := s.catchUp(ctx, uid, base, !cached && base.user != nil)
	if errors.Is(err, errSnapshotAhead) {
		// The snapshot claims a version the stream does not have: trust the events alone.
		u, err = s.catchUp(ctx, uid, cachedUser{}, false)
	}
	return u, err
}

// currentAt is current for a caller who has just read the version of the user's last stored event
// (0: the stream has none), in the same statement as something else: a user cached at that version
// or later is the user as their stream stands, and is returned without reading the store. Stream
// versions are never rewritten, so a cached user of the same version holds every event there is.
func (s *UserStreams) currentAt(ctx context.Context, uid domain.UserID, version uint64) (*domain.User, error) {
	if version == 0 {
		return nil, fmt.Errorf("%w: %s", ErrUserNotFound, uid)
	}
	if base, ok := s.cache.get(uid); ok && base.user.Version() >= version {
		return base.user, nil
	}
	return s.current(ctx, uid)
}

// errSnapshotAhead: a stored snapshot is of a version beyond the stream's last event.
var errSnapshotAhead = errors.New("commands: snapshot ahead of its stream")

// catchUp applies to base (none: an empty user) the events of the stream after its version, caches
// the result and saves a snapshot when one is due. confirm (for a base read from a snapshot) also
// reads the base's own version, to make sure the stream has it (errSnapshotAhead otherwise).
func (s *UserStreams) catchUp(ctx context.Context, uid domain.UserID, base cachedUser, confirm bool) (*domain.User, error) {
	var after uint64
	if base.user != nil {
		after = base.user.Version()
	}
	from := after
	if confirm {
		from--
	}
	next := from + 1
	var tail []domain.Event
	for e, err := range s.store.ReadStream(ctx, uid.Stream(), from) {
		if err != nil {
			return nil, fmt.Errorf("commands: read stream of %s: %w", uid, err)
		}
		if e.StreamVersion != next {
			// Only a broken store gets here; forget the cache rather than build on it.
			s.cache.drop(uid)
			return nil, fmt.Errorf("commands: stream of %s yields version %d, want %d", uid, e.StreamVersion, next)
		}
		next++
		if e.StreamVersion <= after {
			continue // the snapshot's own version: it exists
		}
		d, err := s.decode(e)
		if err != nil {
			return nil, err
		}
		tail = append(tail, d)
	}
	if confirm && next <= after {
		return nil, errSnapshotAhead
	}
	var u *domain.User
	switch {
	case base.user == nil && len(tail) == 0:
		return nil, fmt.Errorf("%w: %s", ErrUserNotFound, uid)
	case base.user == nil:
		var err error
		if u, err = domain.RehydrateUser(tail); err != nil {
			return nil, fmt.Errorf("commands: rebuild user %s: %w", uid, err)
		}
	case len(tail) == 0 && !confirm:
		return base.user, nil // cached, and nothing new
	default:
		u = base.user
		if !confirm {
			u = u.Clone() // the cached one is shared: never changed
		}
		if err := u.Advance(tail); err != nil {
			return nil, fmt.Errorf("commands: rebuild user %s: %w", uid, err)
		}
	}
	u.UseLevels(s.levels)
	u.LimitSessions(s.maxSessions)
	saved := base.saved
	if s.snapshots != nil && u.Version()-saved >= s.snapshotEvery {
		s.saveSnapshot(ctx, u)
		saved = u.Version() // tried: a failure is tried again SnapshotEvery events later
	}
	s.cache.put(uid, cachedUser{user: u, saved: saved})
	return u, nil
}

// restore returns the user of the stored snapshot, or no user when there is none or it cannot be
// used (another schema, unreadable, someone else's, the store failing): the events then rebuild
// the user, so a snapshot can only save time.
func (s *UserStreams) restore(ctx context.Context, uid domain.UserID) cachedUser {
	if s.snapshots == nil {
		return cachedUser{}
	}
	snap, ok, err := s.snapshots.LoadSnapshot(ctx, uid.Stream())
	if err != nil || !ok || snap.Schema != domain.UserSnapshotSchema {
		return cachedUser{}
	}
	u, err := domain.RestoreUser(snap.Data, snap.Version)
	if err != nil || u.ID() != uid {
		return cachedUser{}
	}
	return cachedUser{user: u, saved: snap.Version}
}

// saveSnapshot stores the user's state. A failure only means the next cold load reads more events,
// so it is not the request's failure.
func (s *UserStreams) saveSnapshot(ctx context.Context, u *domain.User) {
	data, err := u.Snapshot()
	if err != nil {
		return
	}
	_ = s.snapshots.SaveSnapshot(ctx, u.ID().Stream(), eventstore.Snapshot{Version: u.Version(), Schema: domain.UserSnapshotSchema, Data: data})
}

// foreignEvent stands for a stored event this build does not know (a newer feature's): it still
// counts in the stream version, and the User skips it.
type foreignEvent string

func (f foreignEvent) EventType() string { return string(f) }

func (s *UserStreams) decode(e eventstore.Event) (domain.Event, error) {
	d, err := s.registry.Decode(e.Type, e.SchemaVersion, e.Data)
	if errors.Is(err, domain.ErrUnknownEventType) {
		return foreignEvent(e.Type), nil
	}
	if err != nil {
		return nil, fmt.Errorf("commands: decode %s v%d of %s: %w", e.Type, e.SchemaVersion, e.StreamID, err)
	}
	return d, nil
}

// change is what a command decided: events to append and unique keys to claim and release.
type change struct {
	events         []domain.Event
	claim, release []string
	// messages are queued in the outbox with the events, when the streams keep one (UseOutbox);
	// without it, codes go to the Notifier after the append and notices are not sent.
	messages []Message
	// asUser records the user as the actor when the caller is anonymous: they proved who they
	// are with a password or a one-shot token.
	asUser bool
}

// metadata is the metadata of the change's events.
func (c change) metadata(meta Meta, u *domain.User) eventstore.Metadata {
	if c.asUser {
		meta = meta.asUser(u)
	}
	return meta.metadata()
}

// outcome is what an update did.
type outcome struct {
	user     *domain.User // after the change; the current user when nothing was appended
	result   eventstore.AppendResult
	replayed bool // the idempotency key was used before: nothing was appended
}

// update loads the user, lets decide change it, and appends the change with the version it was
// loaded at. When the stream changed meanwhile it reloads and decides again, up to maxAttempts
// times. decide runs once per attempt on a fresh user; an empty change appends nothing.
//
// The first try starts from the user cached in this process, without reading the store: the
// append's expected version proves the cache held the stream as it stands (versions are never
// rewritten), and a command that signs in, say, has read the user a moment before. Only a change
// appended so stands on the cached user. Anything else that try leads to (another version
// appended meanwhile, a refusal, nothing to change, a key taken, any error) may come from the
// cache's staleness: the user is then read from the store and decided on again, as if the cache
// had not been there, and that try is not counted against maxAttempts.
func (s *UserStreams) update(ctx context.Context, uid domain.UserID, command string, meta Meta, decide func(u *domain.User) (change, error)) (outcome, error) {
	if _, err := domain.ParseUserID(string(uid)); err != nil {
		return outcome{}, fmt.Errorf("%w: %w", ErrCommandInvalid, err)
	}
	idem, err := newIdempotency(command, meta)
	if err != nil {
		return outcome{}, err
	}
	if o, ok, err := s.replay(ctx, idem); ok || err != nil {
		return o, err
	}
	if base, ok := s.cache.get(uid); ok {
		u := base.user.Clone()
		if c, err := decide(u); err == nil && len(c.events) > 0 {
			if res, err := s.append(ctx, uid.Stream(), eventstore.Exactly(u.Version()), c, c.metadata(meta, u), idem); err == nil {
				return outcome{user: u, result: res}, nil
			}
		}
	}
	for attempt := 1; ; attempt++ {
		u, err := s.load(ctx, uid)
		if err != nil {
			return outcome{}, err
		}
		c, err := decide(u)
		if err != nil {
			return outcome{}, err
		}
		if len(c.events) == 0 {
			return outcome{user: u}, nil
		}
		res, err := s.append(ctx, uid.Stream(), eventstore.Exactly(u.Version()), c, c.metadata(meta, u), idem)
		switch {
		case err == nil:
			return outcome{user: u, result: res}, nil
		case errors.Is(err, eventstore.ErrConcurrency):
			if attempt >= s.maxAttempts {
				return outcome{}, &ConflictError{Stream: uid.Stream(), Attempts: attempt}
			}
		default:
			return s.replayOr(ctx, idem, err)
		}
	}
}

// create appends a new user's first events to a stream that must not exist yet. build draws the
// id and decides; a taken id (a 40-bit collision) draws again.
func (s *UserStreams) create(ctx context.Context, command string, meta Meta, build func(uid domain.UserID) (*domain.User, change, error)) (outcome, error) {
	idem, err := newIdempotency(command, meta)
	if err != nil {
		return outcome{}, err
	}
	if o, ok, err := s.replay(ctx, idem); ok || err != nil {
		return o, err
	}
	ids, ok := s.store.(UserIDSource)
	if !ok {
		ids = randomUserIDs{}
	}
	for attempt := 1; ; attempt++ {
		uid := ids.NewUserID(ctx)
		u, c, err := build(uid)
		if err != nil {
			ids.UnusedUserID(uid)
			return outcome{}, err
		}
		res, err := s.append(ctx, uid.Stream(), eventstore.NoStream, c, c.metadata(meta, u), idem)
		var taken *eventstore.KeyTakenError
		switch {
		case err == nil:
			return outcome{user: u, result: res}, nil
		case errors.Is(err, eventstore.ErrConcurrency):
			if attempt >= s.maxAttempts {
				return outcome{}, &ConflictError{Stream: uid.Stream(), Attempts: attempt}
			}
		default:
			if errors.As(err, &taken) {
				ids.UnusedUserID(uid) // refused whole: nothing of it is stored
			}
			return s.replayOr(ctx, idem, err)
		}
	}
}

// UserIDSource is an event store that draws new users' ids itself: personaldata.Store, which
// stores their data keys ahead, so a registration writes none.
// An id whose registration was refused with nothing stored is given back.
type UserIDSource interface {
	NewUserID(context.Context) domain.UserID
	UnusedUserID(domain.UserID)
}

// randomUserIDs draws the ids of a store that draws none: from crypto/rand, nothing kept.
type randomUserIDs struct{}

func (randomUserIDs) NewUserID(context.Context) domain.UserID {
	var random [5]byte
	rand.Read(random[:]) // never fails (crypto/rand, Go 1.24+)
	return domain.NewUserID(random)
}

func (randomUserIDs) UnusedUserID(domain.UserID) {}

// replay reports whether the command's idempotency key was used before, and then the current
// state of the user it was used on.
func (s *UserStreams) replay(ctx context.Context, idem idempotency) (outcome, bool, error) {
	if idem.claim == "" {
		return outcome{}, false, nil
	}
	stream, err := s.keys.KeyOwner(ctx, idem.claim)
	if errors.Is(err, eventstore.ErrKeyNotClaimed) {
		return outcome{}, false, nil
	}
	if err != nil {
		return outcome{}, false, fmt.Errorf("commands: look up idempotency key: %w", err)
	}
	uid, err := domain.UserIDFromStream(stream)
	if err != nil {
		return outcome{}, false, fmt.Errorf("commands: idempotency key held by %s: %w", stream, err)
	}
	u, err := s.load(ctx, uid)
	if err != nil {
		return outcome{}, false, err
	}
	return outcome{user: u, replayed: true}, true, nil
}

// replayOr returns the replay of the idempotency key if err may come from a concurrent use of it
// (the store reports one of the keys the append claimed, in its own order, or the derived event
// ids), and err otherwise.
func (s *UserStreams) replayOr(ctx context.Context, idem idempotency, err error) (outcome, error) {
	if idem.claim != "" && (errors.Is(err, eventstore.ErrKeyTaken) || errors.Is(err, eventstore.ErrDuplicateEvent)) {
		if o, ok, rerr := s.replay(ctx, idem); ok || rerr != nil {
			return o, rerr
		}
	}
	return outcome{}, err
}

// append stores the change. A unique key held by another user becomes ErrEmailTaken or
// ErrUsernameTaken.
func (s *UserStreams) append(ctx context.Context, stream string, expected eventstore.ExpectedVersion, c change, md eventstore.Metadata, idem idempotency) (eventstore.AppendResult, error) {
	events := make([]eventstore.NewEvent, len(c.events))
	for i, e := range c.events {
		data, err := json.Marshal(e)
		if err != nil {
			return eventstore.AppendResult{}, fmt.Errorf("commands: encode %s: %w", e.EventType(), err)
		}
		v, err := s.registry.SchemaVersion(e.EventType())
		if err != nil {
			return eventstore.AppendResult{}, err
		}
		events[i] = eventstore.NewEvent{ID: idem.eventID(i), Type: e.EventType(), SchemaVersion: v, Data: data, Metadata: md}
	}
	claim := c.claim
	if idem.claim != "" {
		claim = append(slices.Clip(claim), idem.claim)
	}
	var outbox []eventstore.OutboxMessage
	if s.outbox != nil {
		for _, m := range c.messages {
			sealed, err := s.outbox.Seal(m)
			if err != nil {
				return eventstore.AppendResult{}, fmt.Errorf("commands: seal %s message: %w", m.Kind, err)
			}
			outbox = append(outbox, sealed)
		}
	}
	res, err := s.store.Append(ctx, eventstore.Append{Stream: stream, Expected: expected, Events: events, Claim: claim, Release: c.release, Outbox: outbox})
	var taken *eventstore.KeyTakenError
	if errors.As(err, &taken) {
		switch {
		case strings.HasPrefix(taken.Key, emailKeyPrefix):
			return res, fmt.Errorf("%w: %w", ErrEmailTaken, err)
		case strings.HasPrefix(taken.Key, usernameKeyPrefix):
			return res, fmt.Errorf("%w: %w", ErrUsernameTaken, err)
		}
	}
	if err != nil {
		return res, fmt.Errorf("commands: append to %s: %w", stream, err)
	}
	if w, ok := s.outbox.(QueueWatcher); ok && len(outbox) > 0 {
		w.Queued()
	}
	return res, nil
}

// owner returns the user holding a unique key, ok false if nobody does.
func (s *UserStreams) owner(ctx context.Context, key string) (domain.UserID, bool, error) {
	stream, err := s.keys.KeyOwner(ctx, key)
	if errors.Is(err, eventstore.ErrKeyNotClaimed) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("commands: look up a unique key: %w", err)
	}
	uid, err := domain.UserIDFromStream(stream)
	if err != nil {
		return "", false, fmt.Errorf("commands: unique key held by %s: %w", stream, err)
	}
	return uid, true, nil
}

// cachedUser is a rebuilt user and the version of their last snapshot saved or read.
type cachedUser struct {
	user  *domain.User // never changed once cached: readers share it
	saved uint64
}

// stateCache keeps rebuilt users, each at the version it was rebuilt at. An entry is only replaced
// by one of a later version; a full cache forgets an arbitrary eighth of its entries (Go's map
// order is random). The users' state is bounded (sessions by the session limit), so the cache does
// not grow with their history.
type stateCache struct {
	mu  sync.Mutex
	max int
	m   map[domain.UserID]cachedUser
}

// get returns the cached user. A nil cache is empty.
func (c *stateCache) get(uid domain.UserID) (cachedUser, bool) {
	if c == nil {
		return cachedUser{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[uid]
	return e, ok
}

func (c *stateCache) put(uid domain.UserID, e cachedUser) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old, ok := c.m[uid]
	if ok && old.user.Version() >= e.user.Version() {
		return // a concurrent load stored as much or more
	}
	if !ok && len(c.m) >= c.max {
		n := max(c.max/8, 1)
		for k := range c.m {
			delete(c.m, k)
			if n--; n == 0 {
				break
			}
		}
	}
	c.m[uid] = e
}

func (c *stateCache) drop(uid domain.UserID) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, uid)
}
