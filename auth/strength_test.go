package auth_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/idlog/idlog/auth"
)

func TestPasswordStrength(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		pw     string
		ok     bool
		reason string // a part of the reason, when refused
	}{
		// Refused.
		{"", false, "at least 8"},
		{"Xk9#mQ2", false, "at least 8"},
		{strings.Repeat("x", 257), false, "at most 256"},
		{"password", false, `common word "password"`},
		{"Password1", false, "common word"},
		{"P@ssw0rd!", false, "common word"},
		{"P@ssw0rd123", false, "common word"},
		{"iloveyou2024", false, "common word"},
		{"Summer2024!", false, "common word"},
		{"12345678", false, "sequence"},
		{"abcdefghijklmnop", false, "sequence"},
		{"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false, "repeats"},
		{"abc123abc123abc123", false, "repeats"},
		{"qwertyuiop", false, "common word"},
		{"zxcvbnm,./", false, "sequence"},
		{"9876543210", false, "sequence"},
		{"abcd1234", false, "sequence"},
		{"19841984", false, "repeats"},
		{"monkey1990", false, "common word"},
		// Accepted.
		{"k3j9x2m7", true, ""}, // random, lower case and digits: 41 bits
		{"Xk9#mQ2$", true, ""}, // random, all classes
		{"correct horse battery staple", true, ""},
		{"tr0ub4dor&3-xylophone", true, ""},
		{"Löwenzahn-Brücke-17", true, ""}, // non-ASCII letters count
		{strings.Repeat("xq7", 1) + "Lm2pZ9wR", true, ""},
	} {
		bits, ok, reason := auth.PasswordStrength(tc.pw)
		if ok != tc.ok {
			t.Errorf("PasswordStrength(%q) = %.1f bits, ok %v, %q; want ok %v", tc.pw, bits, ok, reason, tc.ok)
			continue
		}
		if ok && (reason != "" || bits < auth.MinPasswordEntropy) {
			t.Errorf("PasswordStrength(%q) = %.1f bits, ok, reason %q", tc.pw, bits, reason)
		}
		if !ok && (reason == "" || !strings.Contains(reason, tc.reason)) {
			t.Errorf("PasswordStrength(%q) reason = %q, want it to mention %q", tc.pw, reason, tc.reason)
		}
		err := auth.CheckPassword(tc.pw)
		if tc.ok != (err == nil) || (err != nil && !errors.Is(err, auth.ErrWeakPassword)) {
			t.Errorf("CheckPassword(%q) = %v", tc.pw, err)
		}
	}
}

func TestPasswordStrengthGrowsWithLength(t *testing.T) {
	t.Parallel()
	short, _, _ := auth.PasswordStrength("k3j9x2m7")
	long, _, _ := auth.PasswordStrength("k3j9x2m7w8")
	if long <= short {
		t.Errorf("entropy of a longer random password %.1f <= %.1f", long, short)
	}
	if want := 8 * 5.169; short < want-0.1 || short > want+0.1 { // 8 x log2(36)
		t.Errorf("entropy of 8 random lower-case/digit characters = %.2f, want %.2f", short, want)
	}
}
