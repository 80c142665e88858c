package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"math/big"
)

// NewToken returns a one-time token for an email link or a password reset: plain is 32 random
// bytes in unpadded base64url (43 characters), to send to the user and forget; hash is
// HashToken(plain), to store. The tokens are too long to guess, so a fast hash is enough.
func NewToken() (plain, hash string) {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand, Go 1.24+)
	plain = base64.RawURLEncoding.EncodeToString(b)
	return plain, HashToken(plain)
}

// HashToken is the stored form of a token or code: SHA-256 in 64 lower-case hex digits.
func HashToken(plain string) string {
	sum := sha256.Sum256([]byte(plain))
	return hex.EncodeToString(sum[:])
}

// NewNumericCode returns a uniformly random code of 4 to 10 decimal digits (leading zeros kept),
// for people who type a code rather than follow a link, and HashToken of it. A short code can be
// guessed: store it with a short expiry and throttle attempts. digits out of range is a wiring
// mistake and panics.
func NewNumericCode(digits int) (plain, hash string) {
	if digits < 4 || digits > 10 {
		panic(fmt.Sprintf("auth: numeric code of %d digits, want 4-10", digits))
	}
	limit := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(digits)), nil)
	n, err := rand.Int(rand.Reader, limit)
	if err != nil {
		panic("auth: crypto/rand failed: " + err.Error()) // cannot happen since Go 1.24
	}
	plain = fmt.Sprintf("%0*d", digits, n)
	return plain, HashToken(plain)
}
