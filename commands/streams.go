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
	DefaultMaxAttempts = 5
	DefaultCacheSize   = 10000
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
	// CacheSize is how many users' decoded histories stay in memory, so that loading a user reads
	// only the events appended since. 0 means DefaultCacheSize; negative turns the cache off.
	CacheSize int
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
// Loading always reads the store (the events after the cached version), so a change appended by
// another process is seen at once: the cache saves decoding, never freshness.
type UserStreams struct {
	store       eventstore.Store
	keys        eventstore.KeyOwners
	registry    *domain.Registry
	now         func() time.Time
	maxAttempts int
	cache       *historyCache
	levels      domain.Levels
}

// NewUserStreams returns the users of store. keys finds the stream holding an email or username;
// the SQL stores implement it (eventstore.KeyOwners). Nil dependencies are wiring mistakes and panic.
func NewUserStreams(store eventstore.Store, keys eventstore.KeyOwners, registry *domain.Registry, cfg StreamsConfig) (*UserStreams, error) {
	if store == nil || keys == nil || registry == nil {
		panic("commands: NewUserStreams needs a store, its key owners and an event registry")
	}
	if cfg.MaxAttempts < 0 {
		return nil, fmt.Errorf("commands: max attempts (%d) cannot be negative", cfg.MaxAttempts)
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.CacheSize == 0 {
		cfg.CacheSize = DefaultCacheSize
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Levels.IsZero() {
		cfg.Levels = domain.DefaultLevels()
	}
	s := &UserStreams{store: store, keys: keys, registry: registry, now: cfg.Now, maxAttempts: cfg.MaxAttempts, levels: cfg.Levels}
	if cfg.CacheSize > 0 {
		s.cache = &historyCache{max: cfg.CacheSize, m: map[domain.UserID][]domain.Event{}}
	}
	return s, nil
}

// Now is the clock the commands use.
func (s *UserStreams) Now() time.Time { return s.now() }

// Levels is the level ladder the users' label commands use.
func (s *UserStreams) Levels() domain.Levels { return s.levels }

// load rebuilds the user from its stream: ErrUserNotFound if the stream has no event.
func (s *UserStreams) load(ctx context.Context, uid domain.UserID) (*domain.User, error) {
	history, err := s.history(ctx, uid)
	if err != nil {
		return nil, err
	}
	if len(history) == 0 {
		return nil, fmt.Errorf("%w: %s", ErrUserNotFound, uid)
	}
	u, err := domain.RehydrateUser(history)
	if err != nil {
		return nil, fmt.Errorf("commands: rebuild user %s: %w", uid, err)
	}
	u.UseLevels(s.levels)
	return u, nil
}

// history returns the decoded events of the user's stream: the cached ones, then those appended
// since. The returned slice is never written to again by anyone.
func (s *UserStreams) history(ctx context.Context, uid domain.UserID) ([]domain.Event, error) {
	cached := s.cache.get(uid)
	var fresh []domain.Event
	for e, err := range s.store.ReadStream(ctx, uid.Stream(), uint64(len(cached))) {
		if err != nil {
			return nil, fmt.Errorf("commands: read stream of %s: %w", uid, err)
		}
		if e.StreamVersion != uint64(len(cached)+len(fresh)+1) {
			// Only a broken store gets here; forget the cache rather than build on it.
			s.cache.drop(uid)
			return nil, fmt.Errorf("commands: stream of %s yields version %d after %d", uid, e.StreamVersion, len(cached)+len(fresh))
		}
		d, err := s.decode(e)
		if err != nil {
			return nil, err
		}
		fresh = append(fresh, d)
	}
	if len(fresh) == 0 {
		return cached, nil
	}
	// cached is clipped: appending copies, so no other reader's slice changes.
	history := append(cached, fresh...)
	s.cache.put(uid, history)
	return history, nil
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
	for attempt := 1; ; attempt++ {
		var random [5]byte
		rand.Read(random[:]) // never fails (crypto/rand, Go 1.24+)
		uid := domain.NewUserID(random)
		u, c, err := build(uid)
		if err != nil {
			return outcome{}, err
		}
		res, err := s.append(ctx, uid.Stream(), eventstore.NoStream, c, c.metadata(meta, u), idem)
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
	res, err := s.store.Append(ctx, eventstore.Append{Stream: stream, Expected: expected, Events: events, Claim: claim, Release: c.release})
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

// historyCache keeps decoded user histories. Entries are never modified, only replaced by longer
// ones; a full cache forgets an arbitrary eighth of its entries (Go's map order is random).
type historyCache struct {
	mu  sync.Mutex
	max int
	m   map[domain.UserID][]domain.Event
}

// get returns the cached history, clipped so that appending to it copies. A nil cache is empty.
func (c *historyCache) get(uid domain.UserID) []domain.Event {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clip(c.m[uid])
}

func (c *historyCache) put(uid domain.UserID, history []domain.Event) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(history) <= len(c.m[uid]) {
		return // a concurrent load stored as much or more
	}
	if _, ok := c.m[uid]; !ok && len(c.m) >= c.max {
		n := max(c.max/8, 1)
		for k := range c.m {
			delete(c.m, k)
			if n--; n == 0 {
				break
			}
		}
	}
	c.m[uid] = history
}

func (c *historyCache) drop(uid domain.UserID) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, uid)
}
