package auth_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/idlog/idlog/auth"
)

func sealer(t *testing.T, key []byte) *auth.Sealer {
	t.Helper()
	s, err := auth.NewSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSealOpen(t *testing.T) {
	t.Parallel()
	key := bytes.Repeat([]byte{7}, auth.KeySize)
	s := sealer(t, key)
	secret := []byte("JBSWY3DPEHPK3PXP")
	uid := []byte("ID00000000A1")

	sealed := s.Seal(secret, uid)
	if bytes.Contains(sealed, secret) {
		t.Fatal("sealed data contains the plaintext")
	}
	if again := s.Seal(secret, uid); bytes.Equal(again, sealed) {
		t.Fatal("sealing twice gives the same bytes: the nonce is not random")
	}
	got, err := s.Open(sealed, uid)
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("Open = %q, %v", got, err)
	}
	if got, err := s.Open(s.Seal(nil, nil), nil); err != nil || len(got) != 0 {
		t.Fatalf("empty round trip = %q, %v", got, err)
	}

	other := sealer(t, bytes.Repeat([]byte{8}, auth.KeySize))
	refused := map[string]func() ([]byte, error){
		"another user's additional data": func() ([]byte, error) { return s.Open(sealed, []byte("ID00000000B2")) },
		"no additional data":             func() ([]byte, error) { return s.Open(sealed, nil) },
		"another key":                    func() ([]byte, error) { return other.Open(sealed, uid) },
		"empty":                          func() ([]byte, error) { return s.Open(nil, uid) },
		"truncated":                      func() ([]byte, error) { return s.Open(sealed[:len(sealed)-1], uid) },
		"too short":                      func() ([]byte, error) { return s.Open(sealed[:20], uid) },
		"appended byte":                  func() ([]byte, error) { return s.Open(append(bytes.Clone(sealed), 0), uid) },
	}
	// Every single flipped bit is detected: version, nonce, ciphertext and tag.
	for i := range sealed {
		for _, bit := range []byte{0x01, 0x80} {
			tampered := bytes.Clone(sealed)
			tampered[i] ^= bit
			if got, err := s.Open(tampered, uid); !errors.Is(err, auth.ErrUnseal) || got != nil {
				t.Fatalf("bit %#x of byte %d flipped: Open = %q, %v; want ErrUnseal", bit, i, got, err)
			}
		}
	}
	for name, open := range refused {
		if got, err := open(); !errors.Is(err, auth.ErrUnseal) || got != nil {
			t.Errorf("%s: Open = %q, %v; want ErrUnseal", name, got, err)
		}
	}
}

func TestNewSealerKeySize(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 16, 24, 31, 33, 64} {
		if _, err := auth.NewSealer(make([]byte, n)); !errors.Is(err, auth.ErrKeyInvalid) {
			t.Errorf("NewSealer(%d bytes) = %v, want ErrKeyInvalid", n, err)
		}
	}
}

func TestParseKey(t *testing.T) {
	t.Parallel()
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(250 + i) // wraps, so both alphabets' special characters appear
	}
	for _, text := range []string{
		base64.StdEncoding.EncodeToString(key), base64.RawStdEncoding.EncodeToString(key),
		base64.URLEncoding.EncodeToString(key), base64.RawURLEncoding.EncodeToString(key) + "\n",
	} {
		if got, err := auth.ParseKey(text); err != nil || !bytes.Equal(got, key) {
			t.Errorf("ParseKey(%q) = %x, %v", text, got, err)
		}
	}
	for _, bad := range []string{"", "not base64!", base64.StdEncoding.EncodeToString(key[:16])} {
		if _, err := auth.ParseKey(bad); !errors.Is(err, auth.ErrKeyInvalid) {
			t.Errorf("ParseKey(%q) = %v, want ErrKeyInvalid", bad, err)
		}
	}
}

func TestLoadOrCreateKey(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "keys", "secret.key")
	key, err := auth.LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(key) != auth.KeySize || bytes.Equal(key, make([]byte, auth.KeySize)) {
		t.Fatalf("new key %x", key)
	}
	assertMode(t, path, 0o600)
	assertMode(t, filepath.Dir(path), 0o700|fs.ModeDir)
	again, err := auth.LoadOrCreateKey(path)
	if err != nil || !bytes.Equal(again, key) {
		t.Fatalf("second load = %x, %v; want the same key %x", again, err, key)
	}
	if _, err := auth.NewSealer(key); err != nil {
		t.Fatal(err)
	}
}

func TestLoadOrCreateKeyConcurrently(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "secret.key")
	keys := make([][]byte, 8)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Go(func() {
			k, err := auth.LoadOrCreateKey(path)
			if err != nil {
				t.Error(err)
			}
			keys[i] = k
		})
	}
	wg.Wait()
	for i, k := range keys {
		if !bytes.Equal(k, keys[0]) {
			t.Fatalf("caller %d got key %x, caller 0 got %x", i, k, keys[0])
		}
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("directory holds %d files after concurrent creation, want only the key", len(entries))
	}
}

func TestLoadKeyFileRefusals(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	open := filepath.Join(dir, "open.key")
	if err := os.WriteFile(open, []byte(base64.StdEncoding.EncodeToString(make([]byte, 32))), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := auth.LoadOrCreateKey(open); !errors.Is(err, auth.ErrKeyFileMode) {
		t.Errorf("world-readable key file: %v, want ErrKeyFileMode", err)
	}
	garbage := filepath.Join(dir, "garbage.key")
	if err := os.WriteFile(garbage, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := auth.LoadOrCreateKey(garbage); !errors.Is(err, auth.ErrKeyInvalid) {
		t.Errorf("garbage key file: %v, want ErrKeyInvalid", err)
	}
}

func assertMode(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Mode() & (fs.ModePerm | fs.ModeDir); got != want {
		t.Errorf("%s has mode %v, want %v", path, got, want)
	}
}
