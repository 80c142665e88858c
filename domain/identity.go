package domain

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
)

// UserID identifies a user: "ID" followed by 10 upper-case hexadecimal digits, as in Barong
// ("ID5A3B9C01F2"). Make one with NewUserID or ParseUserID; a converted string is not checked.
type UserID string

// UserStreamPrefix starts the event stream id of every user: "user-" + UserID.
const UserStreamPrefix = "user-"

// NewUserID makes the id of a new user from 5 random bytes the caller drew (the domain has no
// randomness of its own). 40 bits: collisions are possible in a large population, so the command
// layer appends the new user's stream with "no stream expected" and draws again on a conflict.
func NewUserID(random [5]byte) UserID {
	return UserID("ID" + strings.ToUpper(hex.EncodeToString(random[:])))
}

// ParseUserID checks that s is a well-formed user id.
func ParseUserID(s string) (UserID, error) {
	if len(s) != 12 || s[:2] != "ID" {
		return "", fmt.Errorf("%w: %q", ErrUserIDInvalid, s)
	}
	for i := 2; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'A' <= c && c <= 'F') {
			return "", fmt.Errorf("%w: %q", ErrUserIDInvalid, s)
		}
	}
	return UserID(s), nil
}

// UserIDFromStream returns the user id of a stream id made by UserID.Stream.
func UserIDFromStream(stream string) (UserID, error) {
	rest, ok := strings.CutPrefix(stream, UserStreamPrefix)
	if !ok {
		return "", fmt.Errorf("%w: stream %q is not a user stream", ErrUserIDInvalid, stream)
	}
	return ParseUserID(rest)
}

// Stream is the id of the event stream that holds the user's history.
func (id UserID) Stream() string { return UserStreamPrefix + string(id) }

func (id UserID) String() string { return string(id) }

// Limits of user input.
const (
	MaxEmailLength     = 254 // RFC 5321's limit on a forward path, minus the angle brackets
	MinUsernameLength  = 3
	MaxUsernameLength  = 32
	MaxUserDataBytes   = 16 << 10 // free JSON data of a user, after compaction
	maxPasswordHashLen = 512
	maxSessionIDLength = 64
)

// NormalizeEmail trims and lower-cases an email address and checks its form: one "@", a local part
// of 1-64 characters of RFC 5322's dot-atom (letters, digits, !#$%&'*+/=?^_`{|}~- and dots, no
// leading, trailing or doubled dot), and a domain of at least two labels of [a-z0-9-] (1-63
// characters, no leading or trailing hyphen) whose last label is not all digits. Quoted local parts,
// IP-literal domains and non-ASCII addresses are refused: they are legal, rare, and a common path
// for spoofing; internationalised domains are accepted in their punycode (xn--) form.
func NormalizeEmail(raw string) (string, error) {
	e := strings.ToLower(strings.TrimSpace(raw))
	bad := func(why string) (string, error) {
		return "", fmt.Errorf("%w: %q %s", ErrEmailInvalid, raw, why)
	}
	if e == "" {
		return bad("is empty")
	}
	if len(e) > MaxEmailLength {
		return bad(fmt.Sprintf("is longer than %d characters", MaxEmailLength))
	}
	local, domainPart, ok := strings.Cut(e, "@")
	if !ok || strings.Contains(domainPart, "@") {
		return bad("must contain exactly one @")
	}
	if len(local) == 0 || len(local) > 64 {
		return bad("has a local part that is empty or longer than 64 characters")
	}
	if local[0] == '.' || local[len(local)-1] == '.' || strings.Contains(local, "..") {
		return bad("has a misplaced dot in its local part")
	}
	for i := 0; i < len(local); i++ {
		c := local[i]
		if !(isLowerAlnum(c) || c == '.' || strings.IndexByte("!#$%&'*+/=?^_`{|}~-", c) >= 0) {
			return bad(fmt.Sprintf("has a forbidden character %q in its local part", c))
		}
	}
	labels := strings.Split(domainPart, ".")
	if len(labels) < 2 {
		return bad("has no top-level domain")
	}
	for _, l := range labels {
		if len(l) == 0 || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return bad("has an invalid domain label")
		}
		for i := 0; i < len(l); i++ {
			if !(isLowerAlnum(l[i]) || l[i] == '-') {
				return bad(fmt.Sprintf("has a forbidden character %q in its domain", l[i]))
			}
		}
	}
	if strings.Trim(labels[len(labels)-1], "0123456789") == "" {
		return bad("has a numeric top-level domain")
	}
	return e, nil
}

// NormalizeUsername trims and lower-cases a username and checks that it is 3-32 characters of
// [a-z0-9_.-]. Lower-casing makes "Alice" and "alice" the same name for uniqueness and sign-in.
func NormalizeUsername(raw string) (string, error) {
	u := strings.ToLower(strings.TrimSpace(raw))
	if len(u) < MinUsernameLength || len(u) > MaxUsernameLength {
		return "", fmt.Errorf("%w: %q must be %d-%d characters", ErrUsernameInvalid, raw, MinUsernameLength, MaxUsernameLength)
	}
	for i := 0; i < len(u); i++ {
		c := u[i]
		if !(isLowerAlnum(c) || c == '_' || c == '.' || c == '-') {
			return "", fmt.Errorf("%w: %q may hold only a-z, 0-9, '_', '.' and '-'", ErrUsernameInvalid, raw)
		}
	}
	return u, nil
}

func isLowerAlnum(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' }

// normalizeData checks a user's free JSON data (an object or an array) and compacts it. Empty
// input and null mean "no data".
func normalizeData(raw json.RawMessage) (json.RawMessage, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, nil
	}
	if !json.Valid(raw) {
		return nil, fmt.Errorf("%w: not valid JSON", ErrDataInvalid)
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDataInvalid, err)
	}
	if b.Len() > MaxUserDataBytes {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrDataInvalid, b.Len(), MaxUserDataBytes)
	}
	switch b.Bytes()[0] {
	case 'n': // null
		return nil, nil
	case '{', '[':
		return json.RawMessage(b.Bytes()), nil
	default:
		// The API documents data as an object or an array: a bare string or number would reach
		// every client that reads the field as a map.
		return nil, fmt.Errorf("%w: must be a JSON object or array, not %s", ErrDataInvalid, b.Bytes())
	}
}

// checkPasswordHash refuses what cannot be an encoded hash. The domain does not know the hash
// algorithm (auth does); it only makes sure nothing that looks like a plain password gets stored.
func checkPasswordHash(h string) error {
	if len(h) < 2 || h[0] != '$' || len(h) > maxPasswordHashLen || strings.ContainsAny(h, " \t\r\n") {
		return fmt.Errorf("%w: password hash is not an encoded (PHC) hash", ErrInvalidArgument)
	}
	return nil
}

// checkTokenHash accepts only what auth.HashToken produces: SHA-256 as 64 lower-case hex digits.
// A plain token (base64url) is refused, so it cannot end up in an event by mistake.
func checkTokenHash(h string) error {
	if len(h) != 64 {
		return fmt.Errorf("%w: token hash must be 64 hex digits (SHA-256), got %d characters", ErrInvalidArgument, len(h))
	}
	for i := 0; i < len(h); i++ {
		if c := h[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return fmt.Errorf("%w: token hash must be lower-case hex", ErrInvalidArgument)
		}
	}
	return nil
}

// checkSessionID accepts 1-64 characters of [A-Za-z0-9_.:-] (UUIDs, base64url and hex ids).
func checkSessionID(sid string) error {
	if len(sid) == 0 || len(sid) > maxSessionIDLength {
		return fmt.Errorf("%w: session id must be 1-%d characters", ErrInvalidArgument, maxSessionIDLength)
	}
	for i := 0; i < len(sid); i++ {
		c := sid[i]
		if !(isLowerAlnum(c) || 'A' <= c && c <= 'Z' || strings.IndexByte("_.:-", c) >= 0) {
			return fmt.Errorf("%w: session id holds %q", ErrInvalidArgument, c)
		}
	}
	return nil
}

// Role is what a user may do. The zero Role is no role; the only roles are the variables below,
// and ParseRole and JSON decoding refuse any other name.
type Role struct{ name string }

// The roles, from most to least powerful. Every new user is a member.
var (
	RoleSuperAdmin = Role{"superadmin"}
	RoleAdmin      = Role{"admin"}
	RoleAccountant = Role{"accountant"}
	RoleCompliance = Role{"compliance"}
	RoleSupport    = Role{"support"}
	RoleAuditor    = Role{"auditor"}
	RoleMember     = Role{"member"}
)

// Roles lists every role, most powerful first.
func Roles() []Role {
	return []Role{RoleSuperAdmin, RoleAdmin, RoleAccountant, RoleCompliance, RoleSupport, RoleAuditor, RoleMember}
}

// ParseRole returns the role named name.
func ParseRole(name string) (Role, error) {
	for _, r := range Roles() {
		if r.name == name {
			return r, nil
		}
	}
	return Role{}, fmt.Errorf("%w: %q", ErrRoleInvalid, name)
}

func (r Role) String() string { return r.name }

// IsZero reports whether r is no role.
func (r Role) IsZero() bool { return r.name == "" }

// MarshalText encodes the role's name; the zero Role cannot be encoded.
func (r Role) MarshalText() ([]byte, error) {
	if r.IsZero() {
		return nil, fmt.Errorf("%w: zero role", ErrRoleInvalid)
	}
	return []byte(r.name), nil
}

// UnmarshalText decodes a role name, refusing unknown ones.
func (r *Role) UnmarshalText(b []byte) error {
	p, err := ParseRole(string(b))
	if err != nil {
		return err
	}
	*r = p
	return nil
}

// State is where a user's account stands. Only active users can sign in and change their account;
// email verification is a separate flag (User.EmailVerified), not a state.
type State struct{ name string }

// The states of a user.
var (
	// StateActive: the account works. Every new user starts active.
	StateActive = State{"active"}
	// StateBanned: an administrator shut the account.
	StateBanned = State{"banned"}
	// StateLocked: the account is held, for example after too many failed sign-ins.
	StateLocked = State{"locked"}
	// StateDeleted: the user deleted their account, or an administrator did.
	StateDeleted = State{"deleted"}
)

// States lists every state.
func States() []State { return []State{StateActive, StateBanned, StateLocked, StateDeleted} }

// ParseState returns the state named name.
func ParseState(name string) (State, error) {
	for _, s := range States() {
		if s.name == name {
			return s, nil
		}
	}
	return State{}, fmt.Errorf("%w: %q", ErrStateInvalid, name)
}

func (s State) String() string { return s.name }

// IsZero reports whether s is no state.
func (s State) IsZero() bool { return s.name == "" }

// MarshalText encodes the state's name; the zero State cannot be encoded.
func (s State) MarshalText() ([]byte, error) {
	if s.IsZero() {
		return nil, fmt.Errorf("%w: zero state", ErrStateInvalid)
	}
	return []byte(s.name), nil
}

// UnmarshalText decodes a state name, refusing unknown ones.
func (s *State) UnmarshalText(b []byte) error {
	p, err := ParseState(string(b))
	if err != nil {
		return err
	}
	*s = p
	return nil
}
