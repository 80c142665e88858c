package auth

import (
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// Failed password checks cost the same work, whatever the hash.
//
// Imported hashes keep their own algorithm and costs until the user's first sign-in. A bcrypt
// hash at cost 12 takes longer than idlog's argon2id, so a wrong password of such a user would
// answer later than an unknown login (which verifies against an argon2id dummy): a timing
// oracle for "this login exists". Padding by sleeping to a measured time drifts with the load;
// instead every failed check does the same work: the work of each hash cost class present
// (CostClass), once. A known user's own verify counts for its class, dummies of the others
// follow (PadFailure); an unknown login verifies dummies of them all (DummyVerify). A failed
// sign-in then costs the sum of the classes present; a successful one only its own.

// maxCostClasses bounds the classes a hasher pads with: past it, new ones are ignored (an
// import with that many cost classes would make every failed sign-in slow).
const maxCostClasses = 32

// CostClass returns the cost class of a stored hash: a hash of the same algorithm and costs as
// encoded, whose salt and key are zeros, which verifies no password and costs as much to try; ""
// for a malformed hash. The class holds no secret: it may be stored and listed.
func CostClass(encoded string) string {
	ih, err := parseImported(encoded) // argon2id included
	if err != nil {
		return ""
	}
	return ih.class
}

// ownClass is the class of the hasher's own hashes, which every check costs already.
func (h *PasswordHasher) ownClass() string { return CostClass(h.dummy) }

// argon2Class is the class of an argon2 hash with p, and a salt and key of these lengths.
func argon2Class(scheme string, p Params, saltLen, keyLen int) string {
	return fmt.Sprintf("$%s$v=19$m=%d,t=%d,p=%d$%s$%s", scheme, p.Memory, p.Iterations, p.Parallelism, zeros64(saltLen), zeros64(keyLen))
}

// zeros64 is n zero bytes in unpadded standard base64.
func zeros64(n int) string { return base64.RawStdEncoding.EncodeToString(make([]byte, n)) }

// bcryptClass is the class of a bcrypt hash "...$2b$12$<53 characters of salt and hash>": the
// same with zeros ('.' is 0 in bcrypt's base64).
func bcryptClass(s string) string { return s[:len(s)-53] + strings.Repeat(".", 53) }

// costClasses are the classes a hasher pads failed checks with.
type costClasses struct {
	mu       sync.Mutex
	stored   []string // SetCostClasses: those of the hashes stored
	observed []string // seen by Verify since the start, in case stored lags behind
	dummies  map[string]func(password string) bool
}

// SetCostClasses sets the cost classes of the hashes stored (CostClass), as a read model lists
// them; the hasher's own class and "" are left out, and the classes Verify met since the start
// are kept too.
func (h *PasswordHasher) SetCostClasses(classes []string) {
	own := h.ownClass()
	c := &h.classes
	c.mu.Lock()
	defer c.mu.Unlock()
	// Dummies of classes gone are dropped, so that the bound counts the classes present.
	for cl := range c.dummies {
		if !slices.Contains(c.observed, cl) {
			delete(c.dummies, cl)
		}
	}
	c.stored = c.stored[:0]
	for _, cl := range classes {
		if cl != own && !slices.Contains(c.stored, cl) && c.add(cl) {
			c.stored = append(c.stored, cl)
		}
	}
}

// CostClasses returns the classes failed checks are padded with, sorted.
func (h *PasswordHasher) CostClasses() []string {
	c := &h.classes
	c.mu.Lock()
	defer c.mu.Unlock()
	out := slices.Concat(c.stored, c.observed)
	slices.Sort(out)
	return slices.Compact(out)
}

// add makes the dummy of class cl; false if cl is "", malformed or one too many.
func (c *costClasses) add(cl string) bool {
	if cl == "" {
		return false
	}
	if _, ok := c.dummies[cl]; ok {
		return true
	}
	if len(c.dummies) >= maxCostClasses {
		return false
	}
	ih, err := parseImported(cl)
	if err != nil || ih.class != cl {
		return false
	}
	if c.dummies == nil {
		c.dummies = map[string]func(string) bool{}
	}
	c.dummies[cl] = ih.verify
	return true
}

// observe adds the class of a hash Verify just checked.
func (c *costClasses) observe(cl string) {
	if cl == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if slices.Contains(c.stored, cl) || slices.Contains(c.observed, cl) {
		return
	}
	if c.add(cl) {
		c.observed = append(c.observed, cl)
	}
}

// except returns the dummies of every class but skip.
func (c *costClasses) except(skip string) []func(string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []func(string) bool
	for _, cl := range slices.Concat(c.stored, c.observed) {
		if cl != skip {
			out = append(out, c.dummies[cl])
		}
	}
	return out
}

// PadFailure follows a Verify of password against encoded that failed: it verifies password
// against the dummies of every other cost class present (idlog's own argon2id included when
// encoded is of another class), so that the failure costs what an unknown login's DummyVerify
// costs.
func (h *PasswordHasher) PadFailure(password, encoded string) {
	cl, own := CostClass(encoded), h.ownClass()
	if cl != own {
		_, _ = h.Verify(password, h.dummy)
	}
	h.spend(password, cl)
}

// spend verifies password against the dummies of every class present but skip, each in a slot.
func (h *PasswordHasher) spend(password, skip string) {
	for _, verify := range h.classes.except(skip) {
		h.slots <- struct{}{}
		verify(password)
		<-h.slots
	}
}
