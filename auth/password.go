package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// ErrInvalidHash: an encoded password hash is not a PHC string this package can verify
// ($argon2id$v=19$m=...,t=...,p=...$salt$hash with parameters within Params' bounds).
var ErrInvalidHash = errors.New("auth: invalid password hash")

// Params are argon2id's cost parameters. The defaults are OWASP's (Password Storage Cheat Sheet):
// 19 MiB of memory, 2 passes, 1 lane. Tests may lower them (for example Memory 64, Iterations 1)
// to stay fast; production keeps the defaults or raises them.
type Params struct {
	Memory      uint32 // KiB
	Iterations  uint32
	Parallelism uint8
	SaltLength  uint32 // bytes
	KeyLength   uint32 // bytes of the derived hash
}

// DefaultParams returns OWASP's argon2id parameters with a 16-byte salt and a 32-byte hash.
func DefaultParams() Params {
	return Params{Memory: 19 * 1024, Iterations: 2, Parallelism: 1, SaltLength: 16, KeyLength: 32}
}

// Bounds on Params. The upper ones also apply to hashes read from storage, so a tampered hash
// cannot make a sign-in allocate gigabytes.
const (
	maxMemoryKiB  = 1 << 20 // 1 GiB
	maxIterations = 64
	minSaltLength = 8
	maxSaltLength = 64
	minKeyLength  = 16
	maxKeyLength  = 128
)

// Validate checks the parameters, naming the first bad one.
func (p Params) Validate() error {
	switch {
	case p.Parallelism < 1:
		return fmt.Errorf("auth: argon2 parallelism (%d) must be at least 1", p.Parallelism)
	case p.Memory < 8*uint32(p.Parallelism):
		return fmt.Errorf("auth: argon2 memory (%d KiB) must be at least 8 KiB per lane (%d lanes)", p.Memory, p.Parallelism)
	case p.Memory > maxMemoryKiB:
		return fmt.Errorf("auth: argon2 memory (%d KiB) cannot be higher than %d KiB", p.Memory, maxMemoryKiB)
	case p.Iterations < 1 || p.Iterations > maxIterations:
		return fmt.Errorf("auth: argon2 iterations (%d) must be 1-%d", p.Iterations, maxIterations)
	case p.SaltLength < minSaltLength || p.SaltLength > maxSaltLength:
		return fmt.Errorf("auth: argon2 salt length (%d) must be %d-%d bytes", p.SaltLength, minSaltLength, maxSaltLength)
	case p.KeyLength < minKeyLength || p.KeyLength > maxKeyLength:
		return fmt.Errorf("auth: argon2 key length (%d) must be %d-%d bytes", p.KeyLength, minKeyLength, maxKeyLength)
	}
	return nil
}

// PasswordHasher hashes and verifies passwords with argon2id. It is safe for concurrent use.
//
// At most as many hashes as there are cores (GOMAXPROCS) are computed at once; the others queue.
// Each holds its memory cost (19 MiB by default) while it runs, so a burst of sign-ins would
// otherwise take memory without bound and finish no sooner: the cores are the limit either way.
type PasswordHasher struct {
	params Params
	dummy  string        // a hash of a random password, for DummyVerify
	slots  chan struct{} // one per hash allowed to run at once
	// classes are the cost classes of the stored hashes that failed checks are padded with
	// (hashcost.go).
	classes costClasses
}

// NewPasswordHasher returns a hasher that hashes with p. Building it computes one hash (the dummy
// one of DummyVerify), so it takes as long as a sign-in.
func NewPasswordHasher(p Params) (*PasswordHasher, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	h := &PasswordHasher{params: p, slots: make(chan struct{}, runtime.GOMAXPROCS(0))}
	h.dummy = h.Hash(rand.Text())
	return h, nil
}

// Params returns the parameters new hashes are made with.
func (h *PasswordHasher) Params() Params { return h.params }

// Hash returns the PHC string of password with a new random salt:
// $argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>, salt and hash in unpadded standard base64.
func (h *PasswordHasher) Hash(password string) string {
	p := h.params
	salt := make([]byte, p.SaltLength)
	rand.Read(salt) // never fails (crypto/rand, Go 1.24+)
	key := h.derive(password, salt, p)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Iterations, p.Parallelism,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
}

// Verify reports whether password matches encoded, using the parameters stored in encoded (not
// the hasher's), and comparing in constant time. A malformed encoded hash is ErrInvalidHash.
//
// A hash imported from another system (CanonicalImportedHash: bcrypt, argon2i, scrypt, PBKDF2) is
// verified by its own algorithm, in a hashing slot like argon2id's; Outdated is true for it.
func (h *PasswordHasher) Verify(password, encoded string) (bool, error) {
	if !strings.HasPrefix(encoded, "$argon2id$") {
		return h.verifyImported(password, encoded)
	}
	p, salt, key, err := decodeHash(encoded)
	if err != nil {
		return false, err
	}
	if p != h.params {
		h.classes.observe(argon2Class("argon2id", p, len(salt), len(key)))
	}
	got := h.derive(password, salt, p)
	return subtle.ConstantTimeCompare(got, key) == 1, nil
}

// derive computes one argon2id key when a slot is free.
func (h *PasswordHasher) derive(password string, salt []byte, p Params) []byte {
	h.slots <- struct{}{}
	defer func() { <-h.slots }()
	return argon2.IDKey([]byte(password), salt, p.Iterations, p.Memory, p.Parallelism, p.KeyLength)
}

// DummyVerify spends the work of a failed Verify and its PadFailure, and returns nothing: the
// sign-in of an unknown login calls it, so that the answer takes as long as a wrong password of
// a known user, whatever the algorithm and costs of that user's hash.
func (h *PasswordHasher) DummyVerify(password string) {
	_, _ = h.Verify(password, h.dummy)
	h.spend(password, "")
}

// NeedsRehash reports whether encoded was made with other parameters than the hasher's (or is
// malformed): after a successful sign-in, the command layer then stores a new hash.
func (h *PasswordHasher) NeedsRehash(encoded string) bool {
	p, _, _, err := decodeHash(encoded)
	return err != nil || p != h.params
}

// Outdated reports whether encoded was made with lower costs than the hasher's (less memory,
// fewer passes, a shorter salt or key), so that a sign-in should hash the password again. Unlike
// NeedsRehash it is false for a hash with higher costs: during a rolling upgrade a replica still
// on the old costs does not undo what an upgraded one did. A malformed hash is not outdated:
// it cannot have verified a password. An imported hash of another algorithm is outdated.
func (h *PasswordHasher) Outdated(encoded string) bool {
	p, _, _, err := decodeHash(encoded)
	if err != nil {
		_, ierr := parseImported(encoded)
		return ierr == nil && !strings.HasPrefix(encoded, "$argon2id$")
	}
	c := h.params
	return p.Memory < c.Memory || p.Iterations < c.Iterations || p.SaltLength < c.SaltLength || p.KeyLength < c.KeyLength
}

// decodeHash parses a PHC argon2id string strictly.
func decodeHash(encoded string) (p Params, salt, key []byte, err error) {
	bad := func(why string) (Params, []byte, []byte, error) {
		return Params{}, nil, nil, fmt.Errorf("%w: %s", ErrInvalidHash, why)
	}
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[0] != "" {
		return bad("not a PHC string ($id$v=..$params$salt$hash)")
	}
	if parts[1] != "argon2id" {
		return bad(fmt.Sprintf("algorithm %q, want argon2id", parts[1]))
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return bad(fmt.Sprintf("version %q, want v=%d", parts[2], argon2.Version))
	}
	kv := strings.Split(parts[3], ",")
	if len(kv) != 3 {
		return bad("parameters must be m=..,t=..,p=..")
	}
	var nums [3]uint64
	for i, name := range []string{"m", "t", "p"} {
		v, ok := strings.CutPrefix(kv[i], name+"=")
		n, perr := strconv.ParseUint(v, 10, 32)
		if !ok || perr != nil || (len(v) > 1 && v[0] == '0') {
			return bad(fmt.Sprintf("parameter %q", kv[i]))
		}
		nums[i] = n
	}
	if nums[2] > 255 {
		return bad(fmt.Sprintf("parallelism %d", nums[2]))
	}
	if salt, err = base64.RawStdEncoding.Strict().DecodeString(parts[4]); err != nil {
		return bad("salt is not unpadded base64")
	}
	if key, err = base64.RawStdEncoding.Strict().DecodeString(parts[5]); err != nil {
		return bad("hash is not unpadded base64")
	}
	p = Params{Memory: uint32(nums[0]), Iterations: uint32(nums[1]), Parallelism: uint8(nums[2]),
		SaltLength: uint32(len(salt)), KeyLength: uint32(len(key))}
	if err := p.Validate(); err != nil {
		return bad(err.Error())
	}
	return p, salt, key, nil
}
