package commands

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/idlog/idlog/auth"
	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/eventstore"
)

// The access policy's commands (permissions, restrictions, whitelinks) over the system stream
// domain.AccessPolicyStream, and PolicyStream, which loads that stream for them and for the
// gateway's decision cache (package authz).

// PolicyStream loads the access policy from its stream and appends what its commands decide,
// with optimistic concurrency. It keeps the policy it last read, so a load reads only the events
// appended since. It is safe for concurrent use.
type PolicyStream struct {
	store    eventstore.Store
	registry *domain.Registry
	now      func() time.Time
	mu       sync.Mutex
	cached   *domain.AccessPolicy // never changed once cached
}

// NewPolicyStream returns the stream over store. Nil dependencies panic.
func NewPolicyStream(store eventstore.Store, registry *domain.Registry, now func() time.Time) *PolicyStream {
	if store == nil || registry == nil {
		panic("commands: NewPolicyStream needs a store and a registry")
	}
	if now == nil {
		now = time.Now
	}
	return &PolicyStream{store: store, registry: registry, now: now, cached: &domain.AccessPolicy{}}
}

// Current returns the policy as its stream stands now, shared: read it, never call its commands.
func (s *PolicyStream) Current(ctx context.Context) (*domain.AccessPolicy, error) {
	s.mu.Lock()
	base := s.cached
	s.mu.Unlock()
	var tail []domain.Event
	for e, err := range s.store.ReadStream(ctx, domain.AccessPolicyStream, base.Version()) {
		if err != nil {
			return nil, fmt.Errorf("commands: read the access policy: %w", err)
		}
		de, err := s.registry.Decode(e.Type, e.SchemaVersion, e.Data)
		if err != nil {
			return nil, fmt.Errorf("commands: decode %s at %d of the access policy: %w", e.Type, e.StreamVersion, err)
		}
		tail = append(tail, de)
	}
	if len(tail) == 0 {
		return base, nil
	}
	next := base.Clone()
	_ = next.Advance(tail)
	s.mu.Lock()
	if next.Version() > s.cached.Version() {
		s.cached = next
	}
	s.mu.Unlock()
	return next, nil
}

// update lets decide change a copy of the current policy and appends its events, reloading and
// deciding again when the stream moved meanwhile.
func (s *PolicyStream) update(ctx context.Context, meta Meta, decide func(p *domain.AccessPolicy) ([]domain.Event, error)) (uint64, error) {
	for attempt := 1; ; attempt++ {
		cur, err := s.Current(ctx)
		if err != nil {
			return 0, err
		}
		p := cur.Clone()
		events, err := decide(p)
		if err != nil {
			return 0, err
		}
		if len(events) == 0 {
			return 0, nil
		}
		md := meta.metadata()
		md.IdempotencyKey = ""
		batch := make([]eventstore.NewEvent, len(events))
		for i, e := range events {
			data, err := json.Marshal(e)
			if err != nil {
				return 0, fmt.Errorf("commands: encode %s: %w", e.EventType(), err)
			}
			v, err := s.registry.SchemaVersion(e.EventType())
			if err != nil {
				return 0, err
			}
			batch[i] = eventstore.NewEvent{Type: e.EventType(), SchemaVersion: v, Data: data, Metadata: md}
		}
		expected := eventstore.Exactly(cur.Version())
		if cur.Version() == 0 {
			expected = eventstore.NoStream
		}
		res, err := s.store.Append(ctx, eventstore.Append{Stream: domain.AccessPolicyStream, Expected: expected, Events: batch})
		switch {
		case err == nil:
			return res.LastPosition, nil
		case errors.Is(err, eventstore.ErrConcurrency):
			if attempt >= DefaultMaxAttempts {
				return 0, &ConflictError{Stream: domain.AccessPolicyStream, Attempts: attempt}
			}
		default:
			return 0, fmt.Errorf("commands: append to the access policy: %w", err)
		}
	}
}

// PolicyResult is what a policy command did: the rule as it is now (zero after a deletion) and
// the position of its event.
type PolicyResult struct {
	Permission  domain.Permission
	Restriction domain.Restriction
	Position    uint64
}

// AccessPolicyHandler handles the administrators' policy commands and the use of a whitelink.
type AccessPolicyHandler struct {
	policy *PolicyStream
	sealer *auth.Sealer
}

// NewAccessPolicyHandler returns the handler.
func NewAccessPolicyHandler(policy *PolicyStream, sealer *auth.Sealer) AccessPolicyHandler {
	if policy == nil || sealer == nil {
		panic("commands: NewAccessPolicyHandler needs the policy stream and a sealer")
	}
	return AccessPolicyHandler{policy: policy, sealer: sealer}
}

func (h AccessPolicyHandler) permitted(meta Meta) error {
	if meta.ActorUID == eventstore.ActorSystem || Permits(meta.ActorRole, AbilityWriteAccessPolicy) {
		return nil
	}
	return ErrNotPermitted
}

// lastOf finds the rule the events leave: the one created or updated.
func lastOf(events []domain.Event) PolicyResult {
	var r PolicyResult
	for _, e := range events {
		switch e := e.(type) {
		case domain.PermissionCreated:
			r.Permission = e.Permission
		case domain.PermissionUpdated:
			r.Permission = e.Permission
		case domain.RestrictionCreated:
			r.Restriction = e.Restriction
		case domain.RestrictionUpdated:
			r.Restriction = e.Restriction
		}
	}
	return r
}

func (h AccessPolicyHandler) run(ctx context.Context, meta Meta, decide func(p *domain.AccessPolicy) ([]domain.Event, error)) (PolicyResult, error) {
	if err := h.permitted(meta); err != nil {
		return PolicyResult{}, err
	}
	var out PolicyResult
	pos, err := h.policy.update(ctx, meta, func(p *domain.AccessPolicy) ([]domain.Event, error) {
		events, err := decide(p)
		out = lastOf(events)
		return events, err
	})
	out.Position = pos
	return out, err
}

// CreatePermission adds a permission. Errors: ErrNotPermitted, domain.ErrPermissionInvalid,
// domain.ErrPolicyFull.
func (h AccessPolicyHandler) CreatePermission(ctx context.Context, meta Meta, x domain.Permission) (PolicyResult, error) {
	return h.run(ctx, meta, func(p *domain.AccessPolicy) ([]domain.Event, error) { return p.CreatePermission(x) })
}

// UpdatePermission changes a permission. Errors: those of CreatePermission,
// domain.ErrPermissionNotFound, domain.ErrUnchanged.
func (h AccessPolicyHandler) UpdatePermission(ctx context.Context, meta Meta, id int64, patch domain.PermissionPatch) (PolicyResult, error) {
	return h.run(ctx, meta, func(p *domain.AccessPolicy) ([]domain.Event, error) { return p.UpdatePermission(id, patch) })
}

// DeletePermission removes a permission. Errors: ErrNotPermitted, domain.ErrPermissionNotFound.
func (h AccessPolicyHandler) DeletePermission(ctx context.Context, meta Meta, id int64) (PolicyResult, error) {
	return h.run(ctx, meta, func(p *domain.AccessPolicy) ([]domain.Event, error) { return p.DeletePermission(id) })
}

// CreateRestriction adds a restriction. Errors: ErrNotPermitted, domain.ErrRestrictionInvalid,
// domain.ErrRestrictionExists, domain.ErrPolicyFull.
func (h AccessPolicyHandler) CreateRestriction(ctx context.Context, meta Meta, x domain.Restriction) (PolicyResult, error) {
	return h.run(ctx, meta, func(p *domain.AccessPolicy) ([]domain.Event, error) { return p.CreateRestriction(x) })
}

// UpdateRestriction changes a restriction. Errors: those of CreateRestriction,
// domain.ErrRestrictionNotFound, domain.ErrUnchanged.
func (h AccessPolicyHandler) UpdateRestriction(ctx context.Context, meta Meta, id int64, patch domain.RestrictionPatch) (PolicyResult, error) {
	return h.run(ctx, meta, func(p *domain.AccessPolicy) ([]domain.Event, error) { return p.UpdateRestriction(id, patch) })
}

// DeleteRestriction removes a restriction. Errors: ErrNotPermitted, domain.ErrRestrictionNotFound.
func (h AccessPolicyHandler) DeleteRestriction(ctx context.Context, meta Meta, id int64) (PolicyResult, error) {
	return h.run(ctx, meta, func(p *domain.AccessPolicy) ([]domain.Event, error) { return p.DeleteRestriction(id) })
}

// whitelinkData is what a whitelink token seals: its expiry, in unix seconds.
var whitelinkData = []byte("whitelink")

// DefaultWhitelinkTTL is how long a whitelink is valid when the administrator does not say.
const DefaultWhitelinkTTL = 24 * time.Hour

// CreateWhitelink makes a whitelink token valid for ttl (0: DefaultWhitelinkTTL, at most 30
// days): whoever uses it (UseWhitelink) whitelists their address. The token is sealed, so it
// cannot be forged or extended, and it is never stored. Errors: ErrNotPermitted,
// ErrCommandInvalid.
func (h AccessPolicyHandler) CreateWhitelink(meta Meta, ttl time.Duration) (token string, expires time.Time, err error) {
	if err := h.permitted(meta); err != nil {
		return "", time.Time{}, err
	}
	if ttl == 0 {
		ttl = DefaultWhitelinkTTL
	}
	if ttl < 0 || ttl > 30*24*time.Hour {
		return "", time.Time{}, fmt.Errorf("%w: whitelink lifetime %v", ErrCommandInvalid, ttl)
	}
	expires = h.policy.now().Add(ttl).UTC().Truncate(time.Second)
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(expires.Unix()))
	return base64.RawURLEncoding.EncodeToString(h.sealer.Seal(b[:], whitelinkData)), expires, nil
}

// UseWhitelink whitelists the caller's address (Meta.IP, scope ip) with a whitelink token.
type UseWhitelink struct {
	Meta
	Token string
}

func (c UseWhitelink) secretChecks(l LimitsConfig) []secretCheck {
	return []secretCheck{l.tokenCheck(c.IP)}
}

// UseWhitelink handles UseWhitelink. An address whitelisted already is left as it is. Errors:
// domain.ErrTokenInvalid (forged), domain.ErrTokenExpired, domain.ErrRestrictionInvalid (no
// usable address).
func (h AccessPolicyHandler) UseWhitelink(ctx context.Context, cmd UseWhitelink) (PolicyResult, error) {
	meta := cmd.Meta
	raw, err := base64.RawURLEncoding.DecodeString(cmd.Token)
	if err != nil {
		return PolicyResult{}, domain.ErrTokenInvalid
	}
	plain, err := h.sealer.Open(raw, whitelinkData)
	if err != nil || len(plain) != 8 {
		return PolicyResult{}, domain.ErrTokenInvalid
	}
	if !h.policy.now().Before(time.Unix(int64(binary.BigEndian.Uint64(plain)), 0)) {
		return PolicyResult{}, domain.ErrTokenExpired
	}
	var out PolicyResult
	pos, err := h.policy.update(ctx, meta, func(p *domain.AccessPolicy) ([]domain.Event, error) {
		events, err := p.CreateRestriction(domain.Restriction{Category: domain.CategoryWhitelist, Scope: domain.ScopeIP, Value: meta.IP})
		if errors.Is(err, domain.ErrRestrictionExists) {
			return nil, nil
		}
		out = lastOf(events)
		return events, err
	})
	out.Position = pos
	return out, err
}

// AuditRequest records, on the user's stream, a request the gateway let through an AUDIT
// permission (domain.RequestAudited): it shows in the activity log under the permission's topic.
type AuditRequest struct {
	Meta
	UID                 domain.UserID
	Topic, Method, Path string
}

// AuditRequestHandler handles AuditRequest.
type AuditRequestHandler struct{ users *UserStreams }

// NewAuditRequestHandler returns the handler.
func NewAuditRequestHandler(users *UserStreams) AuditRequestHandler {
	if users == nil {
		panic("commands: NewAuditRequestHandler needs users")
	}
	return AuditRequestHandler{users: users}
}

// Handle appends the record.
func (h AuditRequestHandler) Handle(ctx context.Context, cmd AuditRequest) (Result, error) {
	cmd.Meta.IdempotencyKey = "" // every request is its own record
	o, err := h.users.update(ctx, cmd.UID, "", cmd.Meta, func(u *domain.User) (change, error) {
		events, err := u.AuditRequest(cmd.Topic, cmd.Method, cmd.Path)
		return change{events: events}, err
	})
	if err != nil {
		return Result{}, err
	}
	return resultOf(o), nil
}
