package domain

import (
	"fmt"
	"strings"
)

// LevelRequirement is one rung of the level ladder: a user holding the private label Key=Value
// (and every lower rung's label) is at least at this rung's level.
type LevelRequirement struct {
	Key         string
	Value       string
	Description string
}

// Levels is the ladder of label requirements that gives a user their level, as in Barong: rung i
// (from 0) grants level i+1, and a user's level is the highest rung whose requirement holds along
// with every lower rung's. Only private labels count: a user can create public labels themselves,
// so a public label must never raise a level.
//
// A Levels is an immutable value. Make one with NewLevels or DefaultLevels; the zero Levels is "not
// configured", and a User given it uses DefaultLevels.
type Levels struct {
	rungs []LevelRequirement
	set   bool
}

// DefaultLevels is Barong's ladder: email=verified -> 1, phone=verified -> 2, document=verified -> 3.
func DefaultLevels() Levels {
	return Levels{set: true, rungs: []LevelRequirement{
		{Key: "email", Value: "verified", Description: "User clicked on the confirmation link"},
		{Key: "phone", Value: "verified", Description: "User has confirmed their phone number"},
		{Key: "document", Value: "verified", Description: "User's identity documents were verified"},
	}}
}

// NewLevels checks a ladder, lowest rung first. Keys and values follow the label rules
// (ErrLabelKeyInvalid, ErrLabelValueInvalid); a key may appear on one rung only, since a user
// holds one private label per key (ErrLevelsInvalid). No rung at all is a valid ladder: every user
// is at level 0.
func NewLevels(rungs ...LevelRequirement) (Levels, error) {
	seen := map[string]bool{}
	out := make([]LevelRequirement, len(rungs))
	for i, r := range rungs {
		if err := checkLabelKey(r.Key); err != nil {
			return Levels{}, fmt.Errorf("level %d: %w", i+1, err)
		}
		if err := checkLabelValue(r.Value); err != nil {
			return Levels{}, fmt.Errorf("level %d: %w", i+1, err)
		}
		if err := checkLabelDescription(r.Description); err != nil {
			return Levels{}, fmt.Errorf("level %d: %w", i+1, err)
		}
		if seen[r.Key] {
			return Levels{}, fmt.Errorf("%w: key %q on two rungs", ErrLevelsInvalid, r.Key)
		}
		seen[r.Key] = true
		out[i] = r
	}
	return Levels{rungs: out, set: true}, nil
}

// ParseLevels reads a ladder written as "key=value,key=value,..." (lowest rung first), the form
// of a configuration variable. An empty string is the empty ladder.
func ParseLevels(s string) (Levels, error) {
	var rungs []LevelRequirement
	if strings.TrimSpace(s) != "" {
		for i, part := range strings.Split(s, ",") {
			k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
			if !ok {
				return Levels{}, fmt.Errorf("%w: rung %d (%q) is not key=value", ErrLevelsInvalid, i+1, part)
			}
			rungs = append(rungs, LevelRequirement{Key: k, Value: v})
		}
	}
	return NewLevels(rungs...)
}

// IsZero reports whether l is the zero, unconfigured Levels.
func (l Levels) IsZero() bool { return !l.set }

// Requirements is a copy of the ladder, lowest rung (level 1) first.
func (l Levels) Requirements() []LevelRequirement {
	return append([]LevelRequirement(nil), l.rungs...)
}

// String is the ladder in the form ParseLevels reads.
func (l Levels) String() string {
	parts := make([]string, len(l.rungs))
	for i, r := range l.rungs {
		parts[i] = r.Key + "=" + r.Value
	}
	return strings.Join(parts, ",")
}

// levelOf is the level granted by a set of private labels, given as key -> value.
func (l Levels) levelOf(private func(key string) (string, bool)) int {
	level := 0
	for i, r := range l.rungs {
		if v, ok := private(r.Key); !ok || v != r.Value {
			break
		}
		level = i + 1
	}
	return level
}
