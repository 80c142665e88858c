// Package blobs keeps files (identity documents) outside the event log, by the SHA-256 of their
// content: the log holds a document's metadata and that hash, the blob store the bytes. Content
// addressing makes a write idempotent (the same bytes again are the same blob) and lets anyone
// holding the log check a blob against it.
package blobs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// Errors of a Store.
var (
	// ErrNotFound: no blob of that hash.
	ErrNotFound = errors.New("blobs: not found")
	// ErrHashMismatch: the bytes written do not hash to the name they were written under.
	ErrHashMismatch = errors.New("blobs: content does not match its SHA-256")
	// ErrInvalidHash: the name is not a SHA-256 in 64 lower-case hex digits.
	ErrInvalidHash = errors.New("blobs: invalid SHA-256")
)

// Store keeps blobs by the SHA-256 (hex) of their content. Implementations are safe for
// concurrent use. Put of a hash already stored succeeds and leaves the blob as it was.
type Store interface {
	// Put reads r to the end and stores its bytes under sum, which they must hash to
	// (ErrHashMismatch otherwise, and nothing is stored).
	Put(ctx context.Context, sum string, r io.Reader) error
	// Open returns the blob's bytes, or an error matching ErrNotFound.
	Open(ctx context.Context, sum string) (io.ReadCloser, error)
}

// Sum is the name a Store keeps b under.
func Sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func checkSum(sum string) error {
	if len(sum) != 64 {
		return fmt.Errorf("%w: %d characters", ErrInvalidHash, len(sum))
	}
	for i := 0; i < len(sum); i++ {
		if c := sum[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return ErrInvalidHash
		}
	}
	return nil
}

// Dir is a Store in a directory of the local file system (the default: <data-dir>/blobs). Blobs
// are files named by their hash under a two-character fan-out directory, mode 0600, written to a
// temporary file, synced and renamed, so a crash never leaves half a blob under its name.
type Dir struct{ path string }

// NewDir returns the store in path, creating the directory (mode 0700) if needed.
func NewDir(path string) (*Dir, error) {
	if path == "" {
		return nil, errors.New("blobs: empty directory path")
	}
	if err := os.MkdirAll(path, 0o700); err != nil {
		return nil, fmt.Errorf("blobs: %w", err)
	}
	return &Dir{path: path}, nil
}

func (d *Dir) file(sum string) string { return filepath.Join(d.path, sum[:2], sum) }

// Put implements Store.
func (d *Dir) Put(ctx context.Context, sum string, r io.Reader) error {
	if err := checkSum(sum); err != nil {
		return err
	}
	name := d.file(sum)
	// Written again: the sweeper's grace starts again (a document may be about to name it).
	now := time.Now()
	switch err := os.Chtimes(name, now, now); {
	case err == nil:
		_, err = io.Copy(io.Discard, r)
		return err
	case !errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("blobs: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(name), 0o700); err != nil {
		return fmt.Errorf("blobs: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(name), ".put-*")
	if err != nil {
		return fmt.Errorf("blobs: %w", err)
	}
	defer os.Remove(tmp.Name()) // after the rename, a no-op
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(tmp, h), r)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("blobs: write %s: %w", sum, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sum {
		return fmt.Errorf("%w: got %s, want %s", ErrHashMismatch, got, sum)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), name); err != nil {
		return fmt.Errorf("blobs: %w", err)
	}
	return nil
}

// Open implements Store.
func (d *Dir) Open(_ context.Context, sum string) (io.ReadCloser, error) {
	if err := checkSum(sum); err != nil {
		return nil, err
	}
	f, err := os.Open(d.file(sum))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, sum)
	}
	if err != nil {
		return nil, fmt.Errorf("blobs: %w", err)
	}
	return f, nil
}

var _ Store = (*Dir)(nil)
