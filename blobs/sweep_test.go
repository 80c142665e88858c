package blobs_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/idlog/idlog/blobs"
)

// testSweepable checks Walk and Delete, and that a Put of a blob already there counts as a new
// write for the sweeper's grace. It deletes what it wrote.
func testSweepable(t *testing.T, s blobs.Sweepable) {
	t.Helper()
	ctx := context.Background()
	a, b := []byte("%PDF-1.4 first"), []byte("%PDF-1.4 second")
	for _, body := range [][]byte{a, b} {
		if err := s.Put(ctx, blobs.Sum(body), strings.NewReader(string(body))); err != nil {
			t.Fatal(err)
		}
	}
	walk := func() map[string]time.Time {
		out := map[string]time.Time{}
		if err := s.Walk(ctx, func(sum string, written time.Time) error {
			out[sum] = written
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	seen := walk()
	first := seen[blobs.Sum(a)]
	if first.IsZero() || seen[blobs.Sum(b)].IsZero() {
		t.Fatalf("walk: %v, want both blobs", seen)
	}
	time.Sleep(1100 * time.Millisecond) // S3's LastModified has one-second steps
	if err := s.Put(ctx, blobs.Sum(a), strings.NewReader(string(a))); err != nil {
		t.Fatal(err)
	}
	if again := walk()[blobs.Sum(a)]; !again.After(first) {
		t.Errorf("put again: written %v, not after %v", again, first)
	}
	for range 2 { // the second time, it is not there: no error
		if err := s.Delete(ctx, blobs.Sum(a)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Open(ctx, blobs.Sum(a)); !errors.Is(err, blobs.ErrNotFound) {
		t.Errorf("open a deleted blob: %v", err)
	}
	if seen := walk(); len(seen) != len(walk()) || !seen[blobs.Sum(b)].After(time.Time{}) {
		t.Errorf("after a delete: %v", seen)
	} else if _, ok := seen[blobs.Sum(a)]; ok {
		t.Errorf("walk still lists the deleted blob")
	}
	if err := s.Delete(ctx, "not a hash"); !errors.Is(err, blobs.ErrInvalidHash) {
		t.Errorf("delete of a bad name: %v", err)
	}
	_ = s.Delete(ctx, blobs.Sum(b))
}

func TestDirSweepable(t *testing.T) {
	t.Parallel()
	d, err := blobs.NewDir(filepath.Join(t.TempDir(), "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	testSweepable(t, d)
}
