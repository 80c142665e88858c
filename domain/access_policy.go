package domain

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
)

// The access policy: Barong's permissions (which role may call which verb on which path prefix,
// and what happens then) and restrictions (who may reach the platform at all, by address,
// network, country or continent). Both live in one system stream, AccessPolicyStream, so that a
// gateway's decision cache follows one stream; administrators change them at run time.

// AccessPolicyStream is the stream of the access policy's events.
const AccessPolicyStream = "access-policy"

// Limits of the access policy.
const (
	MaxPermissions    = 10000
	MaxRestrictions   = 10000
	maxPermissionPath = 255
	maxTopic          = 64
	maxRestrictValue  = 64
)

// Errors of the access policy.
var (
	// ErrPermissionInvalid: a permission field is malformed; the *PolicyFieldError names it.
	ErrPermissionInvalid = errors.New("domain: invalid permission")
	// ErrPermissionNotFound: no permission of that id.
	ErrPermissionNotFound = errors.New("domain: no such permission")
	// ErrRestrictionInvalid: a restriction field is malformed; the *PolicyFieldError names it.
	ErrRestrictionInvalid = errors.New("domain: invalid restriction")
	// ErrRestrictionNotFound: no restriction of that id.
	ErrRestrictionNotFound = errors.New("domain: no such restriction")
	// ErrRestrictionExists: a restriction of that category, scope and value exists already.
	ErrRestrictionExists = errors.New("domain: restriction exists")
	// ErrPolicyFull: MaxPermissions or MaxRestrictions reached.
	ErrPolicyFull = errors.New("domain: too many rules")
)

// PolicyFieldError says which field of a permission or restriction was refused; it matches
// ErrPermissionInvalid or ErrRestrictionInvalid.
type PolicyFieldError struct {
	Kind  error // ErrPermissionInvalid or ErrRestrictionInvalid
	Field string
}

func (e *PolicyFieldError) Error() string   { return fmt.Sprintf("%v: %s", e.Kind, e.Field) }
func (e *PolicyFieldError) Is(t error) bool { return t == e.Kind }

// The verbs and actions of permissions (Barong's, upper case). VerbAll matches every method.
const VerbAll = "ALL"

// Permission actions.
const (
	ActionAccept = "ACCEPT"
	ActionDrop   = "DROP"
	ActionAudit  = "AUDIT"
)

var permissionVerbs = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", VerbAll}

// Permission is one rule: callers of Role calling Verb (or any, ALL) on a path starting with
// Path get Action. Path is kept without its leading slash, as Barong's paths are.
type Permission struct {
	ID     int64  `json:"id"`
	Role   string `json:"role"`
	Verb   string `json:"verb"`
	Path   string `json:"path"`
	Action string `json:"action"`
	Topic  string `json:"topic,omitempty"`
}

// PermissionPatch changes the fields that are not nil.
type PermissionPatch struct {
	Role, Verb, Path, Action, Topic *string
}

// Restriction categories, in Barong's order of precedence: the first category with a rule that
// matches the request decides (a whitelist match lets it through the others).
const (
	CategoryWhitelist   = "whitelist"
	CategoryMaintenance = "maintenance"
	CategoryBlacklist   = "blacklist"
	CategoryBlocklogin  = "blocklogin"
)

// RestrictionCategories are the categories in their order of precedence.
var RestrictionCategories = []string{CategoryWhitelist, CategoryMaintenance, CategoryBlacklist, CategoryBlocklogin}

// Restriction scopes, in Barong's order of matching within a category.
const (
	ScopeAll       = "all"
	ScopeIP        = "ip"
	ScopeIPSubnet  = "ip_subnet"
	ScopeContinent = "continent"
	ScopeCountry   = "country"
)

// RestrictionScopes are the scopes in their order of matching.
var RestrictionScopes = []string{ScopeAll, ScopeIP, ScopeIPSubnet, ScopeContinent, ScopeCountry}

var continents = []string{"AF", "AN", "AS", "EU", "NA", "OC", "SA"}

// Restriction states.
const (
	RestrictionEnabled  = "enabled"
	RestrictionDisabled = "disabled"
)

// Restriction is one rule: requests from Value (an address, a network, a country or continent
// code, or anyone for ScopeAll) fall in Category while State is enabled; a refusal answers Code.
type Restriction struct {
	ID       int64  `json:"id"`
	Category string `json:"category"`
	Scope    string `json:"scope"`
	Value    string `json:"value"`
	Code     int    `json:"code"`
	State    string `json:"state"`
}

// RestrictionPatch changes the fields that are not nil.
type RestrictionPatch struct {
	Category, Scope, Value, State *string
	Code                          *int
}

// DefaultRestrictionCode is Barong's status for a refusal: 471 under maintenance, else by scope.
func DefaultRestrictionCode(category, scope string) int {
	if category == CategoryMaintenance {
		return 471
	}
	switch scope {
	case ScopeContinent, ScopeCountry:
		return 423
	case ScopeIPSubnet:
		return 403
	}
	return 401
}

// Events of the access policy. Created and Updated carry the whole rule as it is now.

// PermissionCreated: an administrator added a permission.
type PermissionCreated struct{ Permission }

// PermissionUpdated: an administrator changed a permission; it is now this.
type PermissionUpdated struct{ Permission }

// PermissionDeleted: an administrator removed a permission.
type PermissionDeleted struct {
	ID int64 `json:"id"`
}

// RestrictionCreated: an administrator added a restriction, or a whitelink was used (the
// envelope's actor says which).
type RestrictionCreated struct{ Restriction }

// RestrictionUpdated: an administrator changed a restriction; it is now this.
type RestrictionUpdated struct{ Restriction }

// RestrictionDeleted: an administrator removed a restriction.
type RestrictionDeleted struct {
	ID int64 `json:"id"`
}

func (PermissionCreated) EventType() string  { return "PermissionCreated" }
func (PermissionUpdated) EventType() string  { return "PermissionUpdated" }
func (PermissionDeleted) EventType() string  { return "PermissionDeleted" }
func (RestrictionCreated) EventType() string { return "RestrictionCreated" }
func (RestrictionUpdated) EventType() string { return "RestrictionUpdated" }
func (RestrictionDeleted) EventType() string { return "RestrictionDeleted" }

func accessPolicyEvents() []Event {
	return []Event{PermissionCreated{}, PermissionUpdated{}, PermissionDeleted{}, RestrictionCreated{}, RestrictionUpdated{}, RestrictionDeleted{}}
}

// AccessPolicy is the aggregate of AccessPolicyStream. The zero value is the empty policy at
// version 0 (no stream yet). It is not safe for concurrent use.
type AccessPolicy struct {
	permissions  map[int64]Permission
	restrictions map[int64]Restriction
	lastPerm     int64 // the highest id given, never reused
	lastRestrict int64
	version      uint64
}

// RehydrateAccessPolicy folds the policy's events, oldest first.
func RehydrateAccessPolicy(events []Event) *AccessPolicy {
	p := &AccessPolicy{}
	_ = p.Advance(events)
	return p
}

// Advance applies events stored after the policy's version and moves the version past them.
// Events of other types are counted and ignored.
func (p *AccessPolicy) Advance(events []Event) error {
	for _, e := range events {
		p.apply(e)
	}
	p.version += uint64(len(events))
	return nil
}

// Version is the stream version the policy was rebuilt at.
func (p *AccessPolicy) Version() uint64 { return p.version }

// Permissions returns the permissions, by id.
func (p *AccessPolicy) Permissions() []Permission {
	out := make([]Permission, 0, len(p.permissions))
	for _, x := range p.permissions {
		out = append(out, x)
	}
	slices.SortFunc(out, func(a, b Permission) int { return int(a.ID - b.ID) })
	return out
}

// Restrictions returns the restrictions, by id.
func (p *AccessPolicy) Restrictions() []Restriction {
	out := make([]Restriction, 0, len(p.restrictions))
	for _, x := range p.restrictions {
		out = append(out, x)
	}
	slices.SortFunc(out, func(a, b Restriction) int { return int(a.ID - b.ID) })
	return out
}

func (p *AccessPolicy) apply(e Event) {
	if p.permissions == nil {
		p.permissions, p.restrictions = map[int64]Permission{}, map[int64]Restriction{}
	}
	switch e := e.(type) {
	case PermissionCreated:
		p.permissions[e.ID] = e.Permission
		p.lastPerm = max(p.lastPerm, e.ID)
	case PermissionUpdated:
		p.permissions[e.ID] = e.Permission
	case PermissionDeleted:
		delete(p.permissions, e.ID)
	case RestrictionCreated:
		p.restrictions[e.ID] = e.Restriction
		p.lastRestrict = max(p.lastRestrict, e.ID)
	case RestrictionUpdated:
		p.restrictions[e.ID] = e.Restriction
	case RestrictionDeleted:
		delete(p.restrictions, e.ID)
	}
}

func (p *AccessPolicy) record(e Event) []Event {
	p.apply(e)
	return []Event{e}
}

func permField(f string) error { return &PolicyFieldError{Kind: ErrPermissionInvalid, Field: f} }
func restrictField(f string) error {
	return &PolicyFieldError{Kind: ErrRestrictionInvalid, Field: f}
}

// normalize checks a permission and returns it in canonical form.
func (x Permission) normalize() (Permission, error) {
	if _, err := ParseRole(x.Role); err != nil {
		return x, permField("role")
	}
	x.Verb = strings.ToUpper(strings.TrimSpace(x.Verb))
	if !slices.Contains(permissionVerbs, x.Verb) {
		return x, permField("verb")
	}
	x.Action = strings.ToUpper(strings.TrimSpace(x.Action))
	if x.Action != ActionAccept && x.Action != ActionDrop && x.Action != ActionAudit {
		return x, permField("action")
	}
	x.Path = strings.TrimLeft(strings.TrimSpace(x.Path), "/")
	if x.Path == "" || len(x.Path) > maxPermissionPath || strings.ContainsAny(x.Path, " \t\r\n?#") {
		return x, permField("path")
	}
	x.Topic = strings.TrimSpace(x.Topic)
	if len(x.Topic) > maxTopic || strings.ContainsAny(x.Topic, "\r\n") {
		return x, permField("topic")
	}
	return x, nil
}

// CreatePermission adds a permission under the next id.
func (p *AccessPolicy) CreatePermission(x Permission) ([]Event, error) {
	x, err := x.normalize()
	if err != nil {
		return nil, err
	}
	if len(p.permissions) >= MaxPermissions {
		return nil, ErrPolicyFull
	}
	x.ID = p.lastPerm + 1
	return p.record(PermissionCreated{x}), nil
}

// UpdatePermission changes a permission's fields.
func (p *AccessPolicy) UpdatePermission(id int64, patch PermissionPatch) ([]Event, error) {
	x, ok := p.permissions[id]
	if !ok {
		return nil, fmt.Errorf("%w: %d", ErrPermissionNotFound, id)
	}
	for _, f := range []struct {
		in  *string
		out *string
	}{{patch.Role, &x.Role}, {patch.Verb, &x.Verb}, {patch.Path, &x.Path}, {patch.Action, &x.Action}, {patch.Topic, &x.Topic}} {
		if f.in != nil {
			*f.out = *f.in
		}
	}
	x, err := x.normalize()
	if err != nil {
		return nil, err
	}
	if x == p.permissions[id] {
		return nil, ErrUnchanged
	}
	return p.record(PermissionUpdated{x}), nil
}

// DeletePermission removes a permission.
func (p *AccessPolicy) DeletePermission(id int64) ([]Event, error) {
	if _, ok := p.permissions[id]; !ok {
		return nil, fmt.Errorf("%w: %d", ErrPermissionNotFound, id)
	}
	return p.record(PermissionDeleted{ID: id}), nil
}

// normalize checks a restriction and returns it in canonical form; a zero Code takes the default.
func (x Restriction) normalize() (Restriction, error) {
	x.Category = strings.ToLower(strings.TrimSpace(x.Category))
	if !slices.Contains(RestrictionCategories, x.Category) {
		return x, restrictField("category")
	}
	x.Scope = strings.ToLower(strings.TrimSpace(x.Scope))
	if !slices.Contains(RestrictionScopes, x.Scope) {
		return x, restrictField("scope")
	}
	x.Value = strings.TrimSpace(x.Value)
	if x.Value == "" || len(x.Value) > maxRestrictValue {
		return x, restrictField("value")
	}
	switch x.Scope {
	case ScopeIP:
		a, err := netip.ParseAddr(x.Value)
		if err != nil || a.Zone() != "" {
			return x, restrictField("value")
		}
		x.Value = a.Unmap().String()
	case ScopeIPSubnet:
		n, err := netip.ParsePrefix(x.Value)
		if err != nil {
			return x, restrictField("value")
		}
		x.Value = n.Masked().String()
	case ScopeCountry:
		x.Value = strings.ToUpper(x.Value)
		if len(x.Value) != 2 || x.Value[0] < 'A' || x.Value[0] > 'Z' || x.Value[1] < 'A' || x.Value[1] > 'Z' {
			return x, restrictField("value")
		}
	case ScopeContinent:
		x.Value = strings.ToUpper(x.Value)
		if !slices.Contains(continents, x.Value) {
			return x, restrictField("value")
		}
	case ScopeAll:
		x.Value = strings.ToLower(x.Value)
	}
	if x.State == "" {
		x.State = RestrictionEnabled
	}
	if x.State != RestrictionEnabled && x.State != RestrictionDisabled {
		return x, restrictField("state")
	}
	if x.Code == 0 || x.Category == CategoryWhitelist {
		x.Code = DefaultRestrictionCode(x.Category, x.Scope)
	}
	if x.Code < 400 || x.Code > 599 {
		return x, restrictField("code")
	}
	return x, nil
}

func (p *AccessPolicy) duplicate(x Restriction) bool {
	for _, o := range p.restrictions {
		if o.ID != x.ID && o.Category == x.Category && o.Scope == x.Scope && o.Value == x.Value {
			return true
		}
	}
	return false
}

// CreateRestriction adds a restriction under the next id.
func (p *AccessPolicy) CreateRestriction(x Restriction) ([]Event, error) {
	x, err := x.normalize()
	if err != nil {
		return nil, err
	}
	if p.duplicate(x) {
		return nil, ErrRestrictionExists
	}
	if len(p.restrictions) >= MaxRestrictions {
		return nil, ErrPolicyFull
	}
	x.ID = p.lastRestrict + 1
	return p.record(RestrictionCreated{x}), nil
}

// UpdateRestriction changes a restriction's fields.
func (p *AccessPolicy) UpdateRestriction(id int64, patch RestrictionPatch) ([]Event, error) {
	x, ok := p.restrictions[id]
	if !ok {
		return nil, fmt.Errorf("%w: %d", ErrRestrictionNotFound, id)
	}
	for _, f := range []struct {
		in  *string
		out *string
	}{{patch.Category, &x.Category}, {patch.Scope, &x.Scope}, {patch.Value, &x.Value}, {patch.State, &x.State}} {
		if f.in != nil {
			*f.out = *f.in
		}
	}
	if patch.Code != nil {
		x.Code = *patch.Code
	} else if patch.Category != nil || patch.Scope != nil {
		x.Code = 0 // the default of the new category and scope
	}
	x, err := x.normalize()
	if err != nil {
		return nil, err
	}
	if p.duplicate(x) {
		return nil, ErrRestrictionExists
	}
	if x == p.restrictions[id] {
		return nil, ErrUnchanged
	}
	return p.record(RestrictionUpdated{x}), nil
}

// DeleteRestriction removes a restriction.
func (p *AccessPolicy) DeleteRestriction(id int64) ([]Event, error) {
	if _, ok := p.restrictions[id]; !ok {
		return nil, fmt.Errorf("%w: %d", ErrRestrictionNotFound, id)
	}
	return p.record(RestrictionDeleted{ID: id}), nil
}

// Clone returns a copy that shares nothing its commands could change.
func (p *AccessPolicy) Clone() *AccessPolicy {
	c := *p
	c.permissions = maps.Clone(p.permissions)
	c.restrictions = maps.Clone(p.restrictions)
	return &c
}
