package auth_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/idlog/idlog/auth"
)

// cheap keeps tests fast; production uses auth.DefaultParams.
var cheap = auth.Params{Memory: 64, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32}

func hasher(t testing.TB, p auth.Params) *auth.PasswordHasher {
	t.Helper()
	h, err := auth.NewPasswordHasher(p)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestPasswordHashRoundTrip(t *testing.T) {
	t.Parallel()
	h := hasher(t, auth.DefaultParams())
	encoded := h.Hash("correct horse battery staple")
	if !strings.HasPrefix(encoded, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash %q is not in the OWASP default PHC form", encoded)
	}
	parts := strings.Split(encoded, "$")
	if len(parts[4]) != 22 || len(parts[5]) != 43 { // 16 and 32 bytes, unpadded base64
		t.Errorf("salt %q / hash %q have the wrong length", parts[4], parts[5])
	}
	if ok, err := h.Verify("correct horse battery staple", encoded); !ok || err != nil {
		t.Errorf("Verify(right password) = %v, %v", ok, err)
	}
	for _, wrong := range []string{"correct horse battery stapl", "Correct horse battery staple", "", "correct horse battery staple "} {
		if ok, err := h.Verify(wrong, encoded); ok || err != nil {
			t.Errorf("Verify(%q) = %v, %v; want false, nil", wrong, ok, err)
		}
	}
	if again := h.Hash("correct horse battery staple"); again == encoded {
		t.Error("two hashes of one password are equal: the salt is not random")
	}
}

func TestVerifyUsesTheStoredParameters(t *testing.T) {
	t.Parallel()
	old := hasher(t, cheap)
	encoded := old.Hash("pw")
	stronger := hasher(t, auth.Params{Memory: 128, Iterations: 2, Parallelism: 2, SaltLength: 16, KeyLength: 32})
	if ok, err := stronger.Verify("pw", encoded); !ok || err != nil {
		t.Fatalf("a hash made with older parameters does not verify: %v, %v", ok, err)
	}
	if !stronger.NeedsRehash(encoded) {
		t.Error("NeedsRehash = false for a hash with other parameters")
	}
	if old.NeedsRehash(encoded) {
		t.Error("NeedsRehash = true for a hash with the hasher's own parameters")
	}
	longer := cheap
	longer.KeyLength = 64
	if !hasher(t, longer).NeedsRehash(encoded) {
		t.Error("NeedsRehash = false for a hash of another length")
	}
	if !old.NeedsRehash("garbage") {
		t.Error("NeedsRehash = false for a malformed hash")
	}
}

func TestVerifyMalformedHashes(t *testing.T) {
	t.Parallel()
	h := hasher(t, cheap)
	good := h.Hash("pw")
	parts := strings.Split(good, "$") // "", argon2id, v=19, m=64,t=1,p=1, salt, hash
	join := func(f func(p []string)) string {
		p := append([]string(nil), parts...)
		f(p)
		return strings.Join(p, "$")
	}
	for name, encoded := range map[string]string{
		"empty":               "",
		"plain text":          "hunter2",
		"bcrypt cost 31":      "$2a$31$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
		"unknown algorithm":   join(func(p []string) { p[1] = "argon2x" }),
		"version 16":          join(func(p []string) { p[2] = "v=16" }),
		"no version":          strings.Join(append(parts[:2:2], parts[3:]...), "$"),
		"params out of order": join(func(p []string) { p[3] = "t=1,m=64,p=1" }),
		"missing param":       join(func(p []string) { p[3] = "m=64,t=1" }),
		"extra param":         join(func(p []string) { p[3] = "m=64,t=1,p=1,k=2" }),
		"leading zero":        join(func(p []string) { p[3] = "m=064,t=1,p=1" }),
		"negative":            join(func(p []string) { p[3] = "m=64,t=-1,p=1" }),
		"zero lanes":          join(func(p []string) { p[3] = "m=64,t=1,p=0" }),
		"300 lanes":           join(func(p []string) { p[3] = "m=4096,t=1,p=300" }),
		"memory bomb":         join(func(p []string) { p[3] = "m=4294967295,t=1,p=1" }),
		"too few KiB a lane":  join(func(p []string) { p[3] = "m=8,t=1,p=2" }),
		"padded salt":         join(func(p []string) { p[4] += "==" }),
		"salt not base64":     join(func(p []string) { p[4] = "!!!!!!!!!!!!" }),
		"short salt":          join(func(p []string) { p[4] = "YWJj" }),
		"hash not base64":     join(func(p []string) { p[5] = "***" }),
		"short hash":          join(func(p []string) { p[5] = "YWJjZGVmZ2g" }),
		"trailing field":      good + "$x",
		"no leading dollar":   strings.TrimPrefix(good, "$"),
	} {
		if ok, err := h.Verify("pw", encoded); ok || !errors.Is(err, auth.ErrInvalidHash) {
			t.Errorf("%s: Verify(%q) = %v, %v; want ErrInvalidHash", name, encoded, ok, err)
		}
	}
}

func TestParamsValidate(t *testing.T) {
	t.Parallel()
	if err := auth.DefaultParams().Validate(); err != nil {
		t.Fatalf("default params: %v", err)
	}
	for _, tc := range []struct {
		name string
		edit func(p *auth.Params)
		want string
	}{
		{"no lanes", func(p *auth.Params) { p.Parallelism = 0 }, "parallelism"},
		{"memory below 8 KiB a lane", func(p *auth.Params) { p.Memory, p.Parallelism = 15, 2 }, "memory (15 KiB)"},
		{"memory above 1 GiB", func(p *auth.Params) { p.Memory = 1<<20 + 1 }, "memory"},
		{"no iterations", func(p *auth.Params) { p.Iterations = 0 }, "iterations (0)"},
		{"short salt", func(p *auth.Params) { p.SaltLength = 4 }, "salt length (4)"},
		{"short key", func(p *auth.Params) { p.KeyLength = 8 }, "key length (8)"},
	} {
		p := auth.DefaultParams()
		tc.edit(&p)
		err := p.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Validate = %v, want an error naming %q", tc.name, err, tc.want)
		}
		if _, cerr := auth.NewPasswordHasher(p); cerr == nil {
			t.Errorf("%s: NewPasswordHasher accepted %+v", tc.name, p)
		}
	}
}

// DummyVerify exists to take as long as a real verification. The test does not run in parallel
// with others, interleaves the two measurements so both see the same machine load, and compares the
// fastest of several runs with a generous ratio, so that a busy machine cannot make it flaky.
func TestDummyVerifyTakesAsLongAsVerify(t *testing.T) {
	h := hasher(t, auth.Params{Memory: 4096, Iterations: 2, Parallelism: 1, SaltLength: 16, KeyLength: 32})
	encoded := h.Hash("pw")
	timed := func(f func()) time.Duration {
		start := time.Now()
		f()
		return time.Since(start)
	}
	real, dummy := time.Duration(1<<62), time.Duration(1<<62)
	for range 7 {
		real = min(real, timed(func() { _, _ = h.Verify("wrong", encoded) }))
		dummy = min(dummy, timed(func() { h.DummyVerify("wrong") }))
	}
	if dummy < real/3 {
		t.Errorf("DummyVerify took %v, Verify %v: an unknown login would answer faster", dummy, real)
	}
}

// BenchmarkPasswordHash measures one hash with the default (OWASP) parameters: the bound on
// sign-ins per core is 1s / (ns/op).
func BenchmarkPasswordHash(b *testing.B) {
	h := hasher(b, auth.DefaultParams())
	for b.Loop() {
		h.Hash("correct horse battery staple")
	}
}

// BenchmarkPasswordVerify is the cost of a sign-in's password check.
func BenchmarkPasswordVerify(b *testing.B) {
	h := hasher(b, auth.DefaultParams())
	encoded := h.Hash("correct horse battery staple")
	for b.Loop() {
		if ok, _ := h.Verify("correct horse battery staple", encoded); !ok {
			b.Fatal("verify failed")
		}
	}
}

func TestOutdated(t *testing.T) {
	t.Parallel()
	low := auth.Params{Memory: 64, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32}
	high := low
	high.Memory, high.Iterations = 128, 2
	lowHash := hasher(t, low).Hash("password")
	highHash := hasher(t, high).Hash("password")
	if !hasher(t, high).Outdated(lowHash) {
		t.Error("a hash with lower costs is not outdated")
	}
	if hasher(t, low).Outdated(highHash) {
		t.Error("a hash with higher costs is outdated: replicas on older costs would downgrade it")
	}
	if hasher(t, high).Outdated(highHash) || hasher(t, high).Outdated("garbage") {
		t.Error("a current or malformed hash is outdated")
	}
}
