package auth

import (
	"crypto/pbkdf2"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/crypto/scrypt"
)

// Hashes imported from other systems (idlog users import) are kept as they were made, in one
// canonical encoding per algorithm, until the user's first successful sign-in replaces them with
// argon2id. Canonical encodings (all start with "$", as the domain requires of a stored hash):
//
//	$2a$ / $2b$ / $2y$...           bcrypt (Barong's has_secure_password, PHP, ...)
//	$bcrypt-sha256hex$2b$10$...     bcrypt over the lower-case hex SHA-256 of the password
//	                                (Meteor's accounts-password, as Wekan stores it; Django's bcrypt_sha256)
//	$argon2id$... / $argon2i$...    argon2 PHC strings
//	$scrypt$ln=14,r=8,p=1$salt$hash passlib's scrypt (salt and hash in base64)
//	$pbkdf2-sha256$i=N$salt$hash    PBKDF2 with sha1, sha256 or sha512 (salt and hash in base64)
//
// CanonicalImportedHash also reads the frameworks' own spellings and turns them into these:
// passlib's $pbkdf2-sha256$N$salt$hash (adapted base64), Django's pbkdf2_sha256$N$salt$hash,
// bcrypt$..., bcrypt_sha256$..., argon2$argon2id$..., and Werkzeug's pbkdf2:sha256:N$salt$hexhash.

// ErrUnsupportedHash: an imported hash is of no format idlog can verify, or its costs are out
// of bounds.
var ErrUnsupportedHash = errors.New("auth: unsupported password hash")

// Bounds on imported hashes' costs: one sign-in must not take seconds or gigabytes, even with a
// crafted import file.
const (
	maxBcryptCost       = 15
	maxPBKDF2Iterations = 5_000_000
	maxScryptLogN       = 20
	maxScryptMemory     = 256 << 20 // bytes: 128 * N * r * p
)

// PrefixMeteorBcrypt is the canonical prefix of bcrypt over the hex SHA-256 of the password.
const PrefixMeteorBcrypt = "$bcrypt-sha256hex$"

// CanonicalImportedHash returns encoded in its canonical form (see above), or an error matching
// ErrUnsupportedHash that says why. An argon2id hash idlog made itself is returned as it is.
func CanonicalImportedHash(encoded string) (string, error) {
	s := strings.TrimSpace(encoded)
	switch {
	case s == "":
		return "", fmt.Errorf("%w: empty", ErrUnsupportedHash)
	case strings.HasPrefix(s, "bcrypt_sha256$"):
		s = PrefixMeteorBcrypt + strings.TrimPrefix(strings.TrimPrefix(s, "bcrypt_sha256$"), "$")
	case strings.HasPrefix(s, "bcrypt$"):
		s = strings.TrimPrefix(s, "bcrypt$")
	case strings.HasPrefix(s, "argon2$"):
		s = strings.TrimPrefix(s, "argon2")
	case strings.HasPrefix(s, "pbkdf2_"):
		c, err := djangoPBKDF2(s)
		if err != nil {
			return "", err
		}
		s = c
	case strings.HasPrefix(s, "pbkdf2:"):
		c, err := werkzeugPBKDF2(s)
		if err != nil {
			return "", err
		}
		s = c
	case strings.HasPrefix(s, "$pbkdf2"):
		c, err := passlibPBKDF2(s)
		if err != nil {
			return "", err
		}
		s = c
	}
	if _, err := parseImported(s); err != nil {
		return "", err
	}
	return s, nil
}

// importedHash is a parsed imported hash, ready to verify.
type importedHash struct {
	verify func(password string) bool
	scheme string
	class  string // HashCostClass
}

// ImportedScheme names the algorithm of a canonical imported hash ("bcrypt", "argon2i", ...), or
// "" if encoded is none (an argon2id hash of idlog's own is "argon2id").
func ImportedScheme(encoded string) string {
	if _, _, _, err := decodeHash(encoded); err == nil {
		return "argon2id"
	}
	h, err := parseImported(encoded)
	if err != nil {
		return ""
	}
	return h.scheme
}

// parseImported parses a canonical imported hash (not argon2id, which decodeHash reads).
func parseImported(s string) (importedHash, error) {
	bad := func(format string, args ...any) (importedHash, error) {
		return importedHash{}, fmt.Errorf("%w: "+format, append([]any{ErrUnsupportedHash}, args...)...)
	}
	switch {
	case strings.HasPrefix(s, "$2a$"), strings.HasPrefix(s, "$2b$"), strings.HasPrefix(s, "$2y$"):
		if err := checkBcrypt(s); err != nil {
			return importedHash{}, err
		}
		return importedHash{scheme: "bcrypt", class: bcryptClass(s), verify: func(pw string) bool {
			return bcrypt.CompareHashAndPassword([]byte(s), []byte(pw)) == nil
		}}, nil
	case strings.HasPrefix(s, PrefixMeteorBcrypt):
		inner := "$" + strings.TrimPrefix(s, PrefixMeteorBcrypt)
		if err := checkBcrypt(inner); err != nil {
			return importedHash{}, err
		}
		return importedHash{scheme: "bcrypt-sha256hex", class: bcryptClass(s), verify: func(pw string) bool {
			sum := sha256.Sum256([]byte(pw))
			return bcrypt.CompareHashAndPassword([]byte(inner), []byte(hex.EncodeToString(sum[:]))) == nil
		}}, nil
	case strings.HasPrefix(s, "$argon2id$"):
		p, salt, key, err := decodeHash(s)
		if err != nil {
			return bad("%v", err)
		}
		return importedHash{scheme: "argon2id", class: argon2Class("argon2id", p, len(salt), len(key)), verify: func(pw string) bool {
			got := argon2.IDKey([]byte(pw), salt, p.Iterations, p.Memory, p.Parallelism, p.KeyLength)
			return subtle.ConstantTimeCompare(got, key) == 1
		}}, nil
	case strings.HasPrefix(s, "$argon2i$"):
		// The same PHC layout as argon2id's: parse it as one, then derive with argon2i.
		p, salt, key, err := decodeHash("$argon2id$" + strings.TrimPrefix(s, "$argon2i$"))
		if err != nil {
			return bad("argon2i: %v", err)
		}
		return importedHash{scheme: "argon2i", class: argon2Class("argon2i", p, len(salt), len(key)), verify: func(pw string) bool {
			got := argon2.Key([]byte(pw), salt, p.Iterations, p.Memory, p.Parallelism, p.KeyLength)
			return subtle.ConstantTimeCompare(got, key) == 1
		}}, nil
	case strings.HasPrefix(s, "$scrypt$"):
		return parseScrypt(s)
	case strings.HasPrefix(s, "$pbkdf2"):
		return parsePBKDF2(s)
	}
	scheme := s
	if i := strings.IndexAny(strings.TrimPrefix(s, "$"), "$:"); i >= 0 {
		scheme = s[:i+1]
	}
	if len(scheme) > 24 {
		scheme = scheme[:24] + "..."
	}
	return bad("unknown format %q (want bcrypt, argon2id, argon2i, scrypt or pbkdf2; see README.md)", scheme)
}

// checkBcrypt checks a bcrypt hash's layout and cost without computing it.
func checkBcrypt(s string) error {
	if len(s) != 60 {
		return fmt.Errorf("%w: bcrypt hash is %d characters, want 60", ErrUnsupportedHash, len(s))
	}
	cost, err := bcrypt.Cost([]byte(s))
	if err != nil {
		return fmt.Errorf("%w: bcrypt: %v", ErrUnsupportedHash, err)
	}
	if cost > maxBcryptCost {
		return fmt.Errorf("%w: bcrypt cost %d above %d", ErrUnsupportedHash, cost, maxBcryptCost)
	}
	return nil
}

// b64 decodes standard or passlib's adapted base64 ("." for "+"), padded or not.
func b64(s string) ([]byte, error) {
	s = strings.TrimRight(strings.ReplaceAll(s, ".", "+"), "=")
	return base64.RawStdEncoding.DecodeString(s)
}

// parseScrypt reads $scrypt$ln=L,r=R,p=P$salt$hash.
func parseScrypt(s string) (importedHash, error) {
	parts := strings.Split(s, "$")
	if len(parts) != 5 {
		return importedHash{}, fmt.Errorf("%w: scrypt: want $scrypt$ln=..,r=..,p=..$salt$hash", ErrUnsupportedHash)
	}
	params := map[string]int{}
	for _, kv := range strings.Split(parts[2], ",") {
		k, v, _ := strings.Cut(kv, "=")
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return importedHash{}, fmt.Errorf("%w: scrypt parameter %q", ErrUnsupportedHash, kv)
		}
		params[k] = n
	}
	ln, r, p := params["ln"], params["r"], params["p"]
	if len(params) != 3 || ln < 1 || r < 1 || p < 1 || ln > maxScryptLogN || 128*(1<<ln)*r*p > maxScryptMemory {
		return importedHash{}, fmt.Errorf("%w: scrypt parameters %q out of bounds (ln <= %d, 128*N*r*p <= %d bytes)", ErrUnsupportedHash, parts[2], maxScryptLogN, maxScryptMemory)
	}
	salt, err1 := b64(parts[3])
	key, err2 := b64(parts[4])
	if err1 != nil || err2 != nil || len(salt) == 0 || len(key) < minKeyLength {
		return importedHash{}, fmt.Errorf("%w: scrypt salt or hash is not base64, or too short", ErrUnsupportedHash)
	}
	class := "$scrypt$" + parts[2] + "$" + zeros64(len(salt)) + "$" + zeros64(len(key))
	return importedHash{scheme: "scrypt", class: class, verify: func(pw string) bool {
		got, err := scrypt.Key([]byte(pw), salt, 1<<ln, r, p, len(key))
		return err == nil && subtle.ConstantTimeCompare(got, key) == 1
	}}, nil
}

// pbkdf2Hashes are the digests PBKDF2 hashes may use, by their passlib names.
var pbkdf2Hashes = map[string]func() hash.Hash{
	"pbkdf2": sha1.New, "pbkdf2-sha1": sha1.New, "pbkdf2-sha256": sha256.New, "pbkdf2-sha512": sha512.New,
}

// parsePBKDF2 reads the canonical $pbkdf2-<digest>$i=N$salt$hash.
func parsePBKDF2(s string) (importedHash, error) {
	parts := strings.Split(s, "$")
	if len(parts) != 5 {
		return importedHash{}, fmt.Errorf("%w: pbkdf2: want $pbkdf2-sha256$i=N$salt$hash", ErrUnsupportedHash)
	}
	newHash, ok := pbkdf2Hashes[parts[1]]
	if !ok {
		return importedHash{}, fmt.Errorf("%w: pbkdf2 digest %q (want sha1, sha256 or sha512)", ErrUnsupportedHash, parts[1])
	}
	v, _ := strings.CutPrefix(parts[2], "i=")
	iter, err := strconv.Atoi(v)
	if err != nil || iter < 1 || iter > maxPBKDF2Iterations {
		return importedHash{}, fmt.Errorf("%w: pbkdf2 iterations %q (want 1-%d)", ErrUnsupportedHash, parts[2], maxPBKDF2Iterations)
	}
	salt, err1 := b64(parts[3])
	key, err2 := b64(parts[4])
	if err1 != nil || err2 != nil || len(salt) == 0 || len(key) < minKeyLength {
		return importedHash{}, fmt.Errorf("%w: pbkdf2 salt or hash is not base64, or too short", ErrUnsupportedHash)
	}
	class := fmt.Sprintf("$%s$i=%d$%s$%s", parts[1], iter, zeros64(len(salt)), zeros64(len(key)))
	return importedHash{scheme: parts[1], class: class, verify: func(pw string) bool {
		got, err := pbkdf2.Key(newHash, pw, salt, iter, len(key))
		return err == nil && subtle.ConstantTimeCompare(got, key) == 1
	}}, nil
}

// canonicalPBKDF2 encodes a PBKDF2 hash canonically.
func canonicalPBKDF2(digest string, iter string, salt, key []byte) string {
	return fmt.Sprintf("$pbkdf2-%s$i=%s$%s$%s", digest, iter,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
}

// passlibPBKDF2 reads passlib's $pbkdf2-sha256$N$salt$hash (and the canonical form, unchanged).
func passlibPBKDF2(s string) (string, error) {
	parts := strings.Split(s, "$")
	if len(parts) != 5 {
		return "", fmt.Errorf("%w: pbkdf2: want $pbkdf2-sha256$N$salt$hash", ErrUnsupportedHash)
	}
	if strings.HasPrefix(parts[2], "i=") {
		return s, nil
	}
	salt, err1 := b64(parts[3])
	key, err2 := b64(parts[4])
	if err1 != nil || err2 != nil {
		return "", fmt.Errorf("%w: pbkdf2 salt or hash is not base64", ErrUnsupportedHash)
	}
	digest := strings.TrimPrefix(strings.TrimPrefix(parts[1], "pbkdf2"), "-")
	if digest == "" {
		digest = "sha1"
	}
	return canonicalPBKDF2(digest, parts[2], salt, key), nil
}

// djangoPBKDF2 reads Django's pbkdf2_sha256$N$salt$hash: the salt is used as it is written.
func djangoPBKDF2(s string) (string, error) {
	parts := strings.Split(s, "$")
	if len(parts) != 4 {
		return "", fmt.Errorf("%w: Django pbkdf2: want pbkdf2_sha256$N$salt$hash", ErrUnsupportedHash)
	}
	key, err := base64.StdEncoding.DecodeString(parts[3])
	if err != nil || parts[2] == "" {
		return "", fmt.Errorf("%w: Django pbkdf2 hash is not base64", ErrUnsupportedHash)
	}
	return canonicalPBKDF2(strings.TrimPrefix(parts[0], "pbkdf2_"), parts[1], []byte(parts[2]), key), nil
}

// werkzeugPBKDF2 reads Werkzeug's pbkdf2:sha256:N$salt$hexhash: the salt is used as it is written.
func werkzeugPBKDF2(s string) (string, error) {
	parts := strings.Split(s, "$")
	method := strings.Split(parts[0], ":")
	if len(parts) != 3 || len(method) != 3 {
		return "", fmt.Errorf("%w: Werkzeug pbkdf2: want pbkdf2:sha256:N$salt$hexhash", ErrUnsupportedHash)
	}
	key, err := hex.DecodeString(parts[2])
	if err != nil || parts[1] == "" {
		return "", fmt.Errorf("%w: Werkzeug pbkdf2 hash is not hex", ErrUnsupportedHash)
	}
	return canonicalPBKDF2(method[1], method[2], []byte(parts[1]), key), nil
}

// verifyImported verifies password against a canonical imported hash, in a hashing slot. How
// long it takes is for PadFailure and DummyVerify to even out (hashcost.go).
func (h *PasswordHasher) verifyImported(password, encoded string) (bool, error) {
	ih, err := parseImported(encoded)
	if err != nil {
		return false, fmt.Errorf("%w: %w", ErrInvalidHash, err)
	}
	h.classes.observe(ih.class)
	h.slots <- struct{}{}
	ok := ih.verify(password)
	<-h.slots
	return ok, nil
}
