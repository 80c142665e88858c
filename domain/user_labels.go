package domain

import (
	"fmt"
	"slices"
	"strings"
)

// Labels and levels of the User. A label is Barong's KYC tag: a key, a value, a scope and a
// description. A user holds at most one label per (key, scope). Private labels are set by
// administrators and by the system (a confirmed email adds email=verified); they grant the user's
// level through the ladder the user was given (Levels). Public labels are the user's own notes.
// Every command that changes the level records LevelChanged in the same batch, right after the
// label event.

// The label a confirmed email address gives: the first rung of DefaultLevels.
const (
	EmailLabelKey      = "email"
	LabelValueVerified = "verified"
)

// Limits of labels.
const (
	MinLabelLength         = 3
	MaxLabelLength         = 255
	MaxLabelDescriptionLen = 255
)

// LabelScope says who may change a label: public labels their user, private labels only an
// administrator (or the system). The zero LabelScope is no scope.
type LabelScope struct{ name string }

// The label scopes.
var (
	ScopePublic  = LabelScope{"public"}
	ScopePrivate = LabelScope{"private"}
)

// ParseLabelScope returns the scope named name.
func ParseLabelScope(name string) (LabelScope, error) {
	switch name {
	case ScopePublic.name:
		return ScopePublic, nil
	case ScopePrivate.name:
		return ScopePrivate, nil
	}
	return LabelScope{}, fmt.Errorf("%w: %q (want public or private)", ErrLabelScopeInvalid, name)
}

func (s LabelScope) String() string { return s.name }

// IsZero reports whether s is no scope.
func (s LabelScope) IsZero() bool { return s.name == "" }

// MarshalText encodes the scope's name; the zero LabelScope cannot be encoded.
func (s LabelScope) MarshalText() ([]byte, error) {
	if s.IsZero() {
		return nil, fmt.Errorf("%w: zero scope", ErrLabelScopeInvalid)
	}
	return []byte(s.name), nil
}

// UnmarshalText decodes a scope name, refusing unknown ones.
func (s *LabelScope) UnmarshalText(b []byte) error {
	p, err := ParseLabelScope(string(b))
	if err != nil {
		return err
	}
	*s = p
	return nil
}

// ActorKind says who runs a label command: the user on their own account, or an administrator.
// Users may touch public labels only. The zero ActorKind is refused.
type ActorKind struct{ name string }

// The kinds of actors of label commands.
var (
	// ActorUser: the user acting on their own labels.
	ActorUser = ActorKind{"user"}
	// ActorAdmin: an administrator, or the system acting on the user's behalf.
	ActorAdmin = ActorKind{"admin"}
)

func (a ActorKind) String() string { return a.name }

// Label is one label of a user.
type Label struct {
	Key         string
	Value       string
	Scope       LabelScope
	Description string
}

type labelID struct {
	key   string
	scope LabelScope
}

type labelState struct {
	value, description string
}

// LabelAdded: the user holds a new label.
type LabelAdded struct {
	Key         string     `json:"key"`
	Value       string     `json:"value"`
	Scope       LabelScope `json:"scope"`
	Description string     `json:"description,omitempty"`
}

// LabelUpdated: the label (Key, Scope) now has this value and description.
type LabelUpdated struct {
	Key         string     `json:"key"`
	Value       string     `json:"value"`
	Scope       LabelScope `json:"scope"`
	Description string     `json:"description,omitempty"`
}

// LabelRemoved: the user no longer holds the label (Key, Scope).
type LabelRemoved struct {
	Key   string     `json:"key"`
	Scope LabelScope `json:"scope"`
}

// LevelChanged: the user's level went From -> To, because their labels changed.
type LevelChanged struct {
	From int `json:"from"`
	To   int `json:"to"`
}

func (LabelAdded) EventType() string   { return "LabelAdded" }
func (LabelUpdated) EventType() string { return "LabelUpdated" }
func (LabelRemoved) EventType() string { return "LabelRemoved" }
func (LevelChanged) EventType() string { return "LevelChanged" }

// checkLabelKey: 3-255 characters of [a-z0-9_-].
func checkLabelKey(k string) error {
	if len(k) < MinLabelLength || len(k) > MaxLabelLength {
		return fmt.Errorf("%w: %q must be %d-%d characters", ErrLabelKeyInvalid, k, MinLabelLength, MaxLabelLength)
	}
	for i := 0; i < len(k); i++ {
		if c := k[i]; !(isLowerAlnum(c) || c == '_' || c == '-') {
			return fmt.Errorf("%w: %q may hold only a-z, 0-9, '_' and '-'", ErrLabelKeyInvalid, k)
		}
	}
	return nil
}

// checkLabelValue: 3-255 characters of [A-Za-z0-9_-].
func checkLabelValue(v string) error {
	if len(v) < MinLabelLength || len(v) > MaxLabelLength {
		return fmt.Errorf("%w: %q must be %d-%d characters", ErrLabelValueInvalid, v, MinLabelLength, MaxLabelLength)
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; !(isLowerAlnum(c) || 'A' <= c && c <= 'Z' || c == '_' || c == '-') {
			return fmt.Errorf("%w: %q may hold only A-Z, a-z, 0-9, '_' and '-'", ErrLabelValueInvalid, v)
		}
	}
	return nil
}

// checkLabelDescription: free text of at most 255 bytes, without control characters.
func checkLabelDescription(d string) error {
	if len(d) > MaxLabelDescriptionLen {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrLabelDescriptionInvalid, len(d), MaxLabelDescriptionLen)
	}
	if strings.ContainsFunc(d, isControl) {
		return fmt.Errorf("%w: holds a control character", ErrLabelDescriptionInvalid)
	}
	return nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f || r == 0xfffd }

// checkLabelAccess applies the rules of who may touch which label: the actor must be known, a
// user may touch only public labels, and only a key they do not hold privately (a public label
// beside a private one of the same key would read as if the user could set it), and only while
// their account is active.
func (u *User) checkLabelAccess(by ActorKind, key string, scope LabelScope) error {
	switch by {
	case ActorAdmin:
		return u.requireOpen()
	case ActorUser:
	default:
		return fmt.Errorf("%w: label command by actor kind %q", ErrInvalidArgument, by.name)
	}
	if err := u.requireActive(); err != nil {
		return err
	}
	if scope == ScopePrivate {
		return fmt.Errorf("%w: %s", ErrLabelPrivate, key)
	}
	if _, ok := u.labels[labelID{key, ScopePrivate}]; ok {
		return fmt.Errorf("%w: %s is held as a private label", ErrLabelPrivate, key)
	}
	return nil
}

func checkLabel(l Label) error {
	if err := checkLabelKey(l.Key); err != nil {
		return err
	}
	if err := checkLabelValue(l.Value); err != nil {
		return err
	}
	if l.Scope.IsZero() {
		return fmt.Errorf("%w: no scope", ErrLabelScopeInvalid)
	}
	return checkLabelDescription(l.Description)
}

// AddLabel gives the user a new label. A label of the same key and scope is ErrLabelExists; a user
// (by ActorUser) adding a private label, or a key they hold privately, is ErrLabelPrivate.
func (u *User) AddLabel(by ActorKind, l Label) ([]Event, error) {
	if err := checkLabel(l); err != nil {
		return nil, err
	}
	if err := u.checkLabelAccess(by, l.Key, l.Scope); err != nil {
		return nil, err
	}
	if _, ok := u.labels[labelID{l.Key, l.Scope}]; ok {
		return nil, fmt.Errorf("%w: %s (%s)", ErrLabelExists, l.Key, l.Scope)
	}
	return u.recordLabel(LabelAdded(l)), nil
}

// UpdateLabel gives the label (l.Key, l.Scope) the value l.Value, and the description
// l.Description when it is not empty (empty keeps the current one). An absent label is
// ErrLabelNotFound; the same value and description ErrUnchanged; a user (by ActorUser) changing a
// private label ErrLabelPrivate.
func (u *User) UpdateLabel(by ActorKind, l Label) ([]Event, error) {
	if err := checkLabel(l); err != nil {
		return nil, err
	}
	if err := u.checkLabelAccess(by, l.Key, l.Scope); err != nil {
		return nil, err
	}
	cur, ok := u.labels[labelID{l.Key, l.Scope}]
	if !ok {
		return nil, fmt.Errorf("%w: %s (%s)", ErrLabelNotFound, l.Key, l.Scope)
	}
	desc := l.Description
	if desc == "" {
		desc = cur.description
	}
	if l.Value == cur.value && desc == cur.description {
		return nil, fmt.Errorf("%w: label %s is already %s", ErrUnchanged, l.Key, l.Value)
	}
	return u.recordLabel(LabelUpdated{Key: l.Key, Value: l.Value, Scope: l.Scope, Description: desc}), nil
}

// RemoveLabel takes the label (key, scope) away. An absent label is ErrLabelNotFound; a user (by
// ActorUser) removing a private label ErrLabelPrivate.
func (u *User) RemoveLabel(by ActorKind, key string, scope LabelScope) ([]Event, error) {
	if err := checkLabelKey(key); err != nil {
		return nil, err
	}
	if scope.IsZero() {
		return nil, fmt.Errorf("%w: no scope", ErrLabelScopeInvalid)
	}
	if err := u.checkLabelAccess(by, key, scope); err != nil {
		return nil, err
	}
	if _, ok := u.labels[labelID{key, scope}]; !ok {
		return nil, fmt.Errorf("%w: %s (%s)", ErrLabelNotFound, key, scope)
	}
	return u.recordLabel(LabelRemoved{Key: key, Scope: scope}), nil
}

// recordLabel records a label event, then LevelChanged if the label moved the user's level.
func (u *User) recordLabel(e Event) []Event {
	events := u.record(e)
	return append(events, u.recordLevel()...)
}

// recordLevel records LevelChanged when the user's labels, under the user's ladder, grant another
// level than the one last recorded.
func (u *User) recordLevel() []Event {
	to := u.ladder().levelOf(func(key string) (string, bool) {
		l, ok := u.labels[labelID{key, ScopePrivate}]
		return l.value, ok
	})
	if to == u.level {
		return nil
	}
	return u.record(LevelChanged{From: u.level, To: to})
}

// setPrivateLabel records what makes the private label key=value hold: nothing if it does,
// LabelUpdated if the key holds another value, LabelAdded otherwise; then LevelChanged if needed.
// It is the system's path (a confirmed email), so it checks no access.
func (u *User) setPrivateLabel(key, value string) []Event {
	id := labelID{key, ScopePrivate}
	cur, ok := u.labels[id]
	switch {
	case ok && cur.value == value:
		return nil
	case ok:
		return u.recordLabel(LabelUpdated{Key: key, Value: value, Scope: ScopePrivate, Description: cur.description})
	default:
		return u.recordLabel(LabelAdded{Key: key, Value: value, Scope: ScopePrivate})
	}
}

// removePrivateLabel records the removal of the private label key=value if the user holds it with
// that value, then LevelChanged if needed. The system's path, like setPrivateLabel.
func (u *User) removePrivateLabel(key, value string) []Event {
	if cur, ok := u.labels[labelID{key, ScopePrivate}]; !ok || cur.value != value {
		return nil
	}
	return u.recordLabel(LabelRemoved{Key: key, Scope: ScopePrivate})
}

// applyLabel changes the labels by one label event.
func (u *User) applyLabel(e Event) {
	if u.labels == nil {
		u.labels = map[labelID]labelState{}
	}
	switch e := e.(type) {
	case LabelAdded:
		u.labels[labelID{e.Key, e.Scope}] = labelState{value: e.Value, description: e.Description}
	case LabelUpdated:
		u.labels[labelID{e.Key, e.Scope}] = labelState{value: e.Value, description: e.Description}
	case LabelRemoved:
		delete(u.labels, labelID{e.Key, e.Scope})
	case LevelChanged:
		u.level = e.To
	}
}

// UseLevels sets the ladder the user's label commands compute levels with. It is configuration,
// not state: the command layer sets the configured ladder on every user it loads. The zero Levels
// means DefaultLevels.
func (u *User) UseLevels(l Levels) { u.levels = l }

// ladder is the user's ladder, DefaultLevels when none was set.
func (u *User) ladder() Levels {
	if u.levels.IsZero() {
		return DefaultLevels()
	}
	return u.levels
}

// Level is the user's level, as last recorded by LevelChanged (0 if never).
func (u *User) Level() int { return u.level }

// Labels lists the user's labels sorted by key, then public before private.
func (u *User) Labels() []Label {
	out := make([]Label, 0, len(u.labels))
	for id, l := range u.labels {
		out = append(out, Label{Key: id.key, Scope: id.scope, Value: l.value, Description: l.description})
	}
	slices.SortFunc(out, func(a, b Label) int {
		if c := strings.Compare(a.Key, b.Key); c != 0 {
			return c
		}
		return strings.Compare(a.Scope.name, b.Scope.name) * -1 // "public" before "private"
	})
	return out
}

// Label returns the label (key, scope), ok false if the user does not hold it.
func (u *User) Label(key string, scope LabelScope) (Label, bool) {
	l, ok := u.labels[labelID{key, scope}]
	if !ok {
		return Label{}, false
	}
	return Label{Key: key, Scope: scope, Value: l.value, Description: l.description}, true
}
