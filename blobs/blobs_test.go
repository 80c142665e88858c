package blobs_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/idlog/idlog/blobs"
)

// TestDir runs the store contract on the directory store.
func TestDir(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "blobs")
	d, err := blobs.NewDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	testStore(t, d)
	// Nothing but the blobs themselves, readable by the owner only.
	filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		info, _ := e.Info()
		if !e.IsDir() && info.Mode().Perm() != 0o600 || strings.Contains(p, ".put-") {
			t.Errorf("%s: mode %v", p, info.Mode())
		}
		return nil
	})
}

func testStore(t *testing.T, s blobs.Store) {
	ctx := context.Background()
	body := []byte("%PDF-1.4 a document")
	sum := blobs.Sum(body)
	if _, err := s.Open(ctx, sum); !errors.Is(err, blobs.ErrNotFound) {
		t.Fatalf("open before put: %v", err)
	}
	if err := s.Put(ctx, blobs.Sum([]byte("other")), bytes.NewReader(body)); !errors.Is(err, blobs.ErrHashMismatch) {
		t.Fatalf("put under a wrong hash: %v", err)
	}
	if _, err := s.Open(ctx, blobs.Sum([]byte("other"))); !errors.Is(err, blobs.ErrNotFound) {
		t.Fatalf("a refused put left a blob: %v", err)
	}
	if err := s.Put(ctx, "../../etc/passwd", bytes.NewReader(body)); !errors.Is(err, blobs.ErrInvalidHash) {
		t.Fatalf("put under a path: %v", err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if err := s.Put(ctx, sum, bytes.NewReader(body)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	r, err := s.Open(ctx, sum)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(r)
	r.Close()
	if !bytes.Equal(got, body) {
		t.Fatalf("read %q, want %q", got, body)
	}
}
