package auth_test

import (
	"bytes"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"image/png"
	"net/url"
	"testing"
	"time"

	"github.com/idlog/idlog/auth"
)

// rfcSecret is the SHA-1 seed of RFC 6238's test vectors, "12345678901234567890", in base32.
var rfcSecret = base32.StdEncoding.EncodeToString([]byte("12345678901234567890"))

func TestTOTPCodeRFC6238Vectors(t *testing.T) {
	t.Parallel()
	// RFC 6238 appendix B, SHA-1 column, last 6 of the 8 digits.
	for _, v := range []struct {
		unix int64
		code string
	}{{59, "287082"}, {1111111109, "081804"}, {1111111111, "050471"}, {1234567890, "005924"}, {2000000000, "279037"}, {20000000000, "353130"}} {
		step := auth.TOTPStep(time.Unix(v.unix, 0))
		if step != v.unix/30 {
			t.Errorf("TOTPStep(%d) = %d", v.unix, step)
		}
		if got, err := auth.TOTPCode(rfcSecret, step); err != nil || got != v.code {
			t.Errorf("code at %d = %q, %v; want %s", v.unix, got, err, v.code)
		}
		if got, err := auth.ValidateTOTP(rfcSecret, v.code, time.Unix(v.unix, 0)); err != nil || got != step {
			t.Errorf("ValidateTOTP(%s at %d) = %d, %v; want step %d", v.code, v.unix, got, err, step)
		}
	}
}

func TestValidateTOTPDrift(t *testing.T) {
	t.Parallel()
	key, err := auth.GenerateTOTP("alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2025, 3, 1, 12, 0, 10, 0, time.UTC)
	s := auth.TOTPStep(now)
	for _, tc := range []struct {
		offset int64
		ok     bool
	}{{0, true}, {-1, true}, {1, true}, {-2, false}, {2, false}, {-10, false}} {
		code, err := auth.TOTPCode(key.Secret, s+tc.offset)
		if err != nil {
			t.Fatal(err)
		}
		// Skip the rare case where the code of a refused step equals an accepted one.
		collides := false
		for d := int64(-1); d <= 1 && !tc.ok; d++ {
			if c, _ := auth.TOTPCode(key.Secret, s+d); c == code {
				collides = true
			}
		}
		if collides {
			continue
		}
		got, err := auth.ValidateTOTP(key.Secret, code, now)
		switch {
		case tc.ok && (err != nil || got != s+tc.offset):
			t.Errorf("code of step now%+d: ValidateTOTP = %d, %v; want step %d", tc.offset, got, err, s+tc.offset)
		case !tc.ok && (!errors.Is(err, auth.ErrOTPCodeInvalid) || got != 0):
			t.Errorf("code of step now%+d: ValidateTOTP = %d, %v; want ErrOTPCodeInvalid", tc.offset, got, err)
		}
	}
	// The step boundaries: at the last second of a step and the first of the next, the returned
	// step is the one the code was made for.
	code, _ := auth.TOTPCode(key.Secret, s)
	for _, at := range []time.Time{time.Unix(s*30, 0), time.Unix(s*30+29, 0), time.Unix(s*30+30, 0), time.Unix(s*30+59, 0), time.Unix(s*30-30, 0)} {
		if got, err := auth.ValidateTOTP(key.Secret, code, at); err != nil || got != s {
			t.Errorf("code of step %d at %v: %d, %v", s, at, got, err)
		}
	}
}

func TestValidateTOTPMalformed(t *testing.T) {
	t.Parallel()
	now := time.Unix(1234567890, 0)
	if got, err := auth.ValidateTOTP(rfcSecret, "005 924", now); err != nil || got != 1234567890/30 {
		t.Errorf("code with a space: %d, %v", got, err)
	}
	for _, code := range []string{"", "00592", "0059244", "00592a", "-05924", "٠٠٥٩٢٤", "005924\n"} {
		if _, err := auth.ValidateTOTP(rfcSecret, code, now); !errors.Is(err, auth.ErrOTPCodeInvalid) {
			t.Errorf("ValidateTOTP(%q) = %v, want ErrOTPCodeInvalid", code, err)
		}
	}
	if _, err := auth.ValidateTOTP("not base32!", "005924", now); err == nil {
		t.Error("ValidateTOTP accepted a malformed secret")
	}
}

func TestGenerateTOTP(t *testing.T) {
	t.Parallel()
	key, err := auth.GenerateTOTP("alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(key.Secret)
	if err != nil || len(raw) != 20 {
		t.Fatalf("secret %q is not 20 bytes of base32: %v", key.Secret, err)
	}
	u, err := url.Parse(key.URL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if u.Scheme != "otpauth" || u.Host != "totp" || u.Path != "/idlog:alice@example.com" {
		t.Errorf("URL %s: want otpauth://totp/idlog:alice@example.com", key.URL)
	}
	for k, want := range map[string]string{"secret": key.Secret, "issuer": "idlog", "period": "30", "digits": "6", "algorithm": "SHA1"} {
		if q.Get(k) != want {
			t.Errorf("URL parameter %s = %q, want %q", k, q.Get(k), want)
		}
	}
	pngBytes, err := base64.StdEncoding.DecodeString(key.QRCode)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(pngBytes))
	if err != nil {
		t.Fatalf("QR code is not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() != 256 || b.Dy() != 256 {
		t.Errorf("QR code is %dx%d, want 256x256", b.Dx(), b.Dy())
	}
	other, _ := auth.GenerateTOTP("alice@example.com")
	if other.Secret == key.Secret {
		t.Error("two generated secrets are equal")
	}
}

func ExampleValidateTOTP() {
	// The command layer validates the code, then hands the step to the domain, which refuses a
	// step it accepted before.
	step, err := auth.ValidateTOTP(rfcSecret, "287082", time.Unix(59, 0))
	fmt.Println(step, err)
	// Output: 1 <nil>
}
