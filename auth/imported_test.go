package auth_test

import (
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/crypto/pbkdf2"
	"golang.org/x/crypto/scrypt"

	"github.com/idlog/idlog/auth"
)

// ImportedHashes returns hashes of password in every format idlog imports, made by the real
// libraries, by the name of the format.
func importedHashes(t testing.TB, password string) map[string]string {
	t.Helper()
	salt := []byte("0123456789abcdef")
	ab64 := func(b []byte) string { return strings.ReplaceAll(base64.RawStdEncoding.EncodeToString(b), "+", ".") }
	std := base64.RawStdEncoding.EncodeToString
	bc, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(password))
	meteor, err := bcrypt.GenerateFromPassword([]byte(hex.EncodeToString(sum[:])), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := scrypt.Key([]byte(password), salt, 1<<10, 8, 1, 32)
	if err != nil {
		t.Fatal(err)
	}
	p256 := pbkdf2.Key([]byte(password), salt, 1000, 32, sha256.New)
	p512 := pbkdf2.Key([]byte(password), salt, 1000, 64, sha512.New)
	p1 := pbkdf2.Key([]byte(password), salt, 1000, 20, sha1.New)
	a2i := argon2.Key([]byte(password), salt, 2, 64, 1, 32)
	a2id := argon2.IDKey([]byte(password), salt, 1, 128, 1, 32)
	return map[string]string{
		"bcrypt 2a":             string(bc),
		"bcrypt 2y (PHP)":       "$2y$" + string(bc[4:]),
		"Meteor bcrypt (Wekan)": auth.PrefixMeteorBcrypt + string(meteor[1:]),
		"Django bcrypt_sha256":  "bcrypt_sha256$" + string(meteor),
		"Django bcrypt":         "bcrypt$" + string(bc),
		"argon2i":               fmt.Sprintf("$argon2i$v=19$m=64,t=2,p=1$%s$%s", std(salt), std(a2i)),
		"argon2id, other costs": fmt.Sprintf("$argon2id$v=19$m=128,t=1,p=1$%s$%s", std(salt), std(a2id)),
		"Django argon2":         fmt.Sprintf("argon2$argon2i$v=19$m=64,t=2,p=1$%s$%s", std(salt), std(a2i)),
		"scrypt (passlib)":      fmt.Sprintf("$scrypt$ln=10,r=8,p=1$%s$%s", ab64(salt), ab64(sc)),
		"pbkdf2-sha256 (PHC)":   fmt.Sprintf("$pbkdf2-sha256$i=1000$%s$%s", std(salt), std(p256)),
		"pbkdf2-sha512 passlib": fmt.Sprintf("$pbkdf2-sha512$1000$%s$%s", ab64(salt), ab64(p512)),
		"pbkdf2 sha1 passlib":   fmt.Sprintf("$pbkdf2$1000$%s$%s", ab64(salt), ab64(p1)),
		"Django pbkdf2_sha256":  fmt.Sprintf("pbkdf2_sha256$1000$%s$%s", salt, base64.StdEncoding.EncodeToString(p256)),
		"Werkzeug pbkdf2":       fmt.Sprintf("pbkdf2:sha256:1000$%s$%s", salt, hex.EncodeToString(p256)),
	}
}

// Every imported format verifies its password, refuses another, and is outdated (rehashed at the
// next sign-in); its canonical form stays canonical.
func TestImportedHashesVerify(t *testing.T) {
	t.Parallel()
	h := hasher(t, auth.Params{Memory: 64, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32})
	const password = "correct horse battery staple"
	for name, raw := range importedHashes(t, password) {
		canonical, err := auth.CanonicalImportedHash(raw)
		if err != nil {
			t.Errorf("%s: CanonicalImportedHash(%q): %v", name, raw, err)
			continue
		}
		if !strings.HasPrefix(canonical, "$") {
			t.Errorf("%s: canonical %q does not start with $", name, canonical)
		}
		if again, err := auth.CanonicalImportedHash(canonical); err != nil || again != canonical {
			t.Errorf("%s: canonical form %q is not stable: %q, %v", name, canonical, again, err)
		}
		if ok, err := h.Verify(password, canonical); !ok || err != nil {
			t.Errorf("%s: Verify(right password, %q) = %v, %v", name, canonical, ok, err)
		}
		if ok, err := h.Verify(password+"!", canonical); ok || err != nil {
			t.Errorf("%s: Verify(wrong password) = %v, %v", name, ok, err)
		}
		// An argon2id hash with higher costs than the hasher's is kept (see Outdated).
		if !strings.HasPrefix(canonical, "$argon2id$") && (!h.Outdated(canonical) || !h.NeedsRehash(canonical)) {
			t.Errorf("%s: %q is not outdated: a sign-in would keep it", name, canonical)
		}
		if auth.ImportedScheme(canonical) == "" {
			t.Errorf("%s: no scheme", name)
		}
	}
	// idlog's own hash is not outdated by the importer's rules.
	if own := h.Hash(password); h.Outdated(own) {
		t.Error("the hasher's own hash is outdated")
	}
}

// Unknown formats, and costs that would let an import file make sign-ins slow, are refused with a
// reason.
func TestImportedHashesRefused(t *testing.T) {
	t.Parallel()
	for raw, reason := range map[string]string{
		"":                                   "empty",
		"hunter2":                            "unknown format",
		"5f4dcc3b5aa765d61d8327deb882cf99":   "unknown format",
		"$1$saltsalt$qjXMvbEw8oaL.CzflDugX/": "unknown format",
		"$2a$31$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy": "bcrypt cost 31",
		"$2a$10$tooshort": "60",
		"$scrypt$ln=30,r=8,p=1$c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2g":     "out of bounds",
		"$pbkdf2-sha256$i=99999999$c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2g": "iterations",
		"$pbkdf2-md5$i=1000$c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2g":        "digest",
		"pbkdf2_sha256$1000$salt$***":                                  "not base64",
	} {
		_, err := auth.CanonicalImportedHash(raw)
		if !errors.Is(err, auth.ErrUnsupportedHash) || !strings.Contains(err.Error(), reason) {
			t.Errorf("CanonicalImportedHash(%q) = %v, want ErrUnsupportedHash saying %q", raw, err, reason)
		}
	}
}
