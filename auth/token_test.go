package auth_test

import (
	"encoding/base64"
	"fmt"
	"regexp"
	"testing"

	"github.com/idlog/idlog/auth"
)

var sha256Hex = regexp.MustCompile(`^[0-9a-f]{64}$`)

func TestNewToken(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 100 {
		plain, hash := auth.NewToken()
		raw, err := base64.RawURLEncoding.Strict().DecodeString(plain)
		if err != nil || len(raw) != 32 {
			t.Fatalf("token %q is not 32 bytes of unpadded base64url: %v", plain, err)
		}
		if !sha256Hex.MatchString(hash) || hash != auth.HashToken(plain) {
			t.Fatalf("hash %q of %q is not HashToken of it", hash, plain)
		}
		if seen[plain] {
			t.Fatalf("token %q drawn twice", plain)
		}
		seen[plain] = true
	}
}

func TestHashToken(t *testing.T) {
	t.Parallel()
	// SHA-256("abc"), FIPS 180-2.
	if got := auth.HashToken("abc"); got != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Errorf("HashToken(abc) = %s", got)
	}
}

func TestNewNumericCode(t *testing.T) {
	t.Parallel()
	for _, digits := range []int{4, 6, 10} {
		re := regexp.MustCompile(fmt.Sprintf(`^[0-9]{%d}$`, digits))
		firstDigits := map[byte]bool{}
		for range 200 {
			plain, hash := auth.NewNumericCode(digits)
			if !re.MatchString(plain) || hash != auth.HashToken(plain) {
				t.Fatalf("NewNumericCode(%d) = %q, %q", digits, plain, hash)
			}
			firstDigits[plain[0]] = true
		}
		// Leading digits, zero included, all occur: the code is not biased to 1-9 or padded badly.
		if len(firstDigits) < 9 {
			t.Errorf("NewNumericCode(%d): only %d different leading digits in 200 codes", digits, len(firstDigits))
		}
	}
	for _, bad := range []int{0, 3, 11} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("NewNumericCode(%d) did not panic", bad)
				}
			}()
			auth.NewNumericCode(bad)
		}()
	}
}
