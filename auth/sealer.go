package auth

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// Errors of sealing.
var (
	// ErrKeyInvalid: a secret key is not 32 bytes, or its text is not base64 of 32 bytes.
	ErrKeyInvalid = errors.New("auth: invalid secret key")
	// ErrUnseal: sealed data is malformed, was tampered with, was sealed with another key, or is
	// opened with other additional data.
	ErrUnseal = errors.New("auth: cannot open sealed data")
)

// KeySize is the size of a Sealer key: AES-256.
const KeySize = 32

// sealVersion starts every sealed value, so the format or algorithm can change later and old
// values still be recognised.
const sealVersion byte = 1

// Sealer encrypts small secrets for storage (TOTP secrets) with AES-256-GCM. It is safe for
// concurrent use.
type Sealer struct{ aead cipher.AEAD }

// NewSealer returns a Sealer with a 32-byte key (LoadOrCreateKey or ParseKey).
func NewSealer(key []byte) (*Sealer, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("%w: %d bytes, want %d", ErrKeyInvalid, len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKeyInvalid, err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("auth: GCM: %w", err)
	}
	return &Sealer{aead: aead}, nil
}

// Seal encrypts plaintext with a random nonce: version byte, 12-byte nonce, ciphertext and tag.
// additionalData (the user id, say) is authenticated, not stored: Open must be given the same,
// so a sealed secret copied to another user does not open.
func (s *Sealer) Seal(plaintext, additionalData []byte) []byte {
	ns := s.aead.NonceSize()
	n := 1 + ns + len(plaintext) + s.aead.Overhead()
	// One allocation: the sealed value, and behind it the authenticated data, which the AEAD
	// reads and does not keep (out's capacity ends before it).
	buf := make([]byte, n, n+1+len(additionalData))
	out := buf[: 1+ns : n]
	out[0] = sealVersion
	readNonce(out[1:])
	return s.aead.Seal(out, out[1:], plaintext, aad(buf[n:n], additionalData))
}

// Open decrypts what Seal returned, given the same additional data; anything else is ErrUnseal.
func (s *Sealer) Open(sealed, additionalData []byte) ([]byte, error) {
	ns := s.aead.NonceSize()
	if len(sealed) < 1+ns+s.aead.Overhead() {
		return nil, fmt.Errorf("%w: %d bytes is too short", ErrUnseal, len(sealed))
	}
	if sealed[0] != sealVersion {
		return nil, fmt.Errorf("%w: unknown format version %d", ErrUnseal, sealed[0])
	}
	// One allocation, as in Seal: the plain value, and behind it the authenticated data.
	n := len(sealed) - 1 - ns - s.aead.Overhead()
	buf := make([]byte, 0, n+1+len(additionalData))
	plain, err := s.aead.Open(buf[:0:n], sealed[1:1+ns], sealed[1+ns:], aad(buf[n:n], additionalData))
	if err != nil {
		return nil, fmt.Errorf("%w: authentication failed", ErrUnseal)
	}
	return plain, nil
}

// aad appends the authenticated data to dst: the format version, bound in, then additionalData.
func aad(dst, additionalData []byte) []byte {
	return append(append(dst, sealVersion), additionalData...)
}

// ParseKey decodes a Sealer key given in configuration: base64 (standard or URL alphabet, padded
// or not) of 32 bytes.
func ParseKey(text string) ([]byte, error) {
	text = strings.TrimSpace(text)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if key, err := enc.Strict().DecodeString(text); err == nil {
			if len(key) != KeySize {
				return nil, fmt.Errorf("%w: %d bytes, want %d", ErrKeyInvalid, len(key), KeySize)
			}
			return key, nil
		}
	}
	return nil, fmt.Errorf("%w: not base64", ErrKeyInvalid)
}

// LoadOrCreateKey returns the Sealer key stored at path (base64 text, as ParseKey reads), or, if
// there is no file, makes a random key and stores it there with mode 0600 (creating the directory
// with 0700). Concurrent first calls agree on one key. A key file that group or others may read
// is refused: whoever reads it can decrypt every stored secret.
func LoadOrCreateKey(path string) ([]byte, error) {
	text, err := loadOrCreateFile(path, func() []byte {
		key := make([]byte, KeySize)
		rand.Read(key)
		return []byte(base64.StdEncoding.EncodeToString(key) + "\n")
	})
	if err != nil {
		return nil, err
	}
	key, err := ParseKey(string(text))
	if err != nil {
		return nil, fmt.Errorf("auth: key file %s: %w", path, err)
	}
	return key, nil
}
