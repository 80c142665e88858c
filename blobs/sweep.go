package blobs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
)

// Sweepable is a Store that can list and delete its blobs, which a Sweeper needs.
type Sweepable interface {
	Store
	// Walk calls fn with every blob and when it was last written (Put), in no given order.
	Walk(ctx context.Context, fn func(sum string, written time.Time) error) error
	// Delete removes a blob; one that is not there is no error.
	Delete(ctx context.Context, sum string) error
}

// References says which blobs a record still names: the KYC read model's documents of open
// accounts (projections.KYCView).
type References interface {
	// Referenced returns those of sums that a document names.
	Referenced(ctx context.Context, sums []string) (map[string]bool, error)
}

// ErrNotReady: a sweep was skipped, its references not being up to date (SweeperOptions.Ready).
var ErrNotReady = errors.New("blobs: the documents' read model is behind; no sweep")

// Defaults of SweeperOptions.
const (
	DefaultSweepGrace = 10 * time.Minute
	DefaultSweepEvery = 5 * time.Minute
)

// SweeperOptions configure NewSweeper.
type SweeperOptions struct {
	Store Sweepable  // required
	Refs  References // required
	// Grace is how long a blob nobody names is kept after its last Put: an upload writes the
	// file first, then appends the event that names it, and the read model follows. Default
	// DefaultSweepGrace; it must be longer than an upload's request and the read model's lag.
	Grace time.Duration
	// Every is the pause between sweeps. Default DefaultSweepEvery.
	Every time.Duration
	// Ready, when set, is asked before each sweep: nil when Refs knows every document appended
	// until a moment ago (its read model is not behind the log). Otherwise the sweep is skipped,
	// with the error: a read model catching up must not make named files look orphaned.
	Ready  func(ctx context.Context) error
	Logger *slog.Logger // nil discards
}

// Sweeper deletes the blobs that no document names any more: the file of an upload whose
// command was refused after the file was stored, and the files of closed accounts (whose
// documents the read model drops), once they are Grace old. A file that another open account's
// document names too (the same bytes) stays. Safe for concurrent use; several replicas may sweep
// one store.
type Sweeper struct {
	o    SweeperOptions
	wake chan struct{}
}

// NewSweeper checks o and returns a sweeper.
func NewSweeper(o SweeperOptions) (*Sweeper, error) {
	switch {
	case o.Store == nil || o.Refs == nil:
		return nil, errors.New("blobs: a sweeper needs a Store and References")
	case o.Grace < 0 || o.Every < 0:
		return nil, fmt.Errorf("blobs: sweep grace (%v) and interval (%v) cannot be negative", o.Grace, o.Every)
	}
	if o.Grace == 0 {
		o.Grace = DefaultSweepGrace
	}
	if o.Every == 0 {
		o.Every = DefaultSweepEvery
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Sweeper{o: o, wake: make(chan struct{}, 1)}, nil
}

// sweepBatch is how many candidates one References query checks.
const sweepBatch = 500

// Sweep deletes, once, every blob last written more than Grace ago that no document names, and
// returns how many it deleted.
func (s *Sweeper) Sweep(ctx context.Context) (int, error) {
	return s.sweep(ctx, time.Now().Add(-s.o.Grace))
}

func (s *Sweeper) sweep(ctx context.Context, before time.Time) (int, error) {
	if s.o.Ready != nil {
		if err := s.o.Ready(ctx); err != nil {
			return 0, fmt.Errorf("%w: %w", ErrNotReady, err)
		}
	}
	deleted := 0
	var batch []string
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		refs, err := s.o.Refs.Referenced(ctx, batch)
		if err != nil {
			return fmt.Errorf("blobs: sweep: %w", err)
		}
		for _, sum := range batch {
			if refs[sum] {
				continue
			}
			if err := s.o.Store.Delete(ctx, sum); err != nil {
				return fmt.Errorf("blobs: sweep: %w", err)
			}
			deleted++
		}
		batch = batch[:0]
		return nil
	}
	err := s.o.Store.Walk(ctx, func(sum string, written time.Time) error {
		if !written.Before(before) {
			return nil
		}
		batch = append(batch, sum)
		if len(batch) < sweepBatch {
			return nil
		}
		return flush()
	})
	if err == nil {
		err = flush()
	}
	return deleted, err
}

// Wake asks Run for a sweep now (an account was closed), without waiting for it.
func (s *Sweeper) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run sweeps at once, then every Every and at each Wake, until ctx ends. A failed sweep is
// logged and tried again at the next.
func (s *Sweeper) Run(ctx context.Context) {
	t := time.NewTicker(s.o.Every)
	defer t.Stop()
	for {
		n, err := s.Sweep(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, ErrNotReady):
			s.o.Logger.Info("blob sweep skipped", "error", err)
		case err != nil:
			s.o.Logger.Warn("blob sweep failed", "error", err)
		case n > 0:
			s.o.Logger.Info("deleted files no document names", "files", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.wake:
		}
	}
}

// Walk implements Sweepable.
func (d *Dir) Walk(ctx context.Context, fn func(sum string, written time.Time) error) error {
	return filepath.WalkDir(d.path, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // deleted meanwhile
			}
			return fmt.Errorf("blobs: %w", err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		name := e.Name()
		if e.IsDir() || strings.HasPrefix(name, ".") || checkSum(name) != nil || filepath.Base(filepath.Dir(p)) != name[:2] {
			return nil // a fan-out directory, a Put under way, or no blob
		}
		info, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("blobs: %w", err)
		}
		return fn(name, info.ModTime())
	})
}

// Delete implements Sweepable.
func (d *Dir) Delete(_ context.Context, sum string) error {
	if err := checkSum(sum); err != nil {
		return err
	}
	if err := os.Remove(d.file(sum)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("blobs: %w", err)
	}
	return nil
}

// Walk implements Sweepable.
func (s *S3) Walk(ctx context.Context, fn func(sum string, written time.Time) error) error {
	for obj := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: s.prefix, Recursive: true}) {
		if obj.Err != nil {
			return fmt.Errorf("blobs: S3 list: %w", obj.Err)
		}
		sum := strings.TrimPrefix(obj.Key, s.prefix)
		if checkSum(sum) != nil {
			continue
		}
		if err := fn(sum, obj.LastModified); err != nil {
			return err
		}
	}
	return nil
}

// Delete implements Sweepable.
func (s *S3) Delete(ctx context.Context, sum string) error {
	if err := checkSum(sum); err != nil {
		return err
	}
	if err := s.client.RemoveObject(ctx, s.bucket, s.key(sum), minio.RemoveObjectOptions{}); err != nil && !notFound(err) {
		return fmt.Errorf("blobs: S3 delete %s: %w", sum, err)
	}
	return nil
}

var (
	_ Sweepable = (*Dir)(nil)
	_ Sweepable = (*S3)(nil)
)
