package audit

import (
	"context"
	"fmt"
	"iter"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/follower"
)

// CheckpointPublisher hands sealed checkpoints to a party outside the database, so that a
// rewrite of both the log and the ledger can still be caught (the event bus publishes them on
// the subject idlog.audit.checkpoints). The sealer calls it from one goroutine, in ordinal order.
// After a crash it may hand the same checkpoint again: receivers deduplicate by ordinal.
type CheckpointPublisher interface {
	PublishCheckpoint(ctx context.Context, c Checkpoint) error
}

// Defaults of SealerOptions.
const (
	DefaultCheckpointEvery    = 10000
	DefaultCheckpointInterval = 10 * time.Second
	DefaultSealBatch          = 5000
	MaxSealBatch              = 10000
	DefaultSealRetry          = time.Second
)

// SealerOptions configure a Sealer.
type SealerOptions struct {
	// Store is the log to seal.
	Store eventstore.Store
	// Ledger is where seals and checkpoints go, in Store's database.
	Ledger *Ledger
	// CheckpointEvery: a checkpoint at least every this many events. 0 means
	// DefaultCheckpointEvery.
	CheckpointEvery int
	// CheckpointInterval: a checkpoint at most this long after an event was sealed. 0 means
	// DefaultCheckpointInterval.
	CheckpointInterval time.Duration
	// BatchSize bounds the seals one transaction writes. 0 means DefaultSealBatch.
	BatchSize int
	// Publisher, when set, receives every checkpoint once it is committed; checkpoints it failed
	// to take are handed again later. Nil keeps checkpoints in the database only.
	Publisher CheckpointPublisher
	// Logger receives failures. Nil discards them.
	Logger *slog.Logger
	// Retry is how long Run waits after a failure before it resumes. 0 means DefaultSealRetry.
	Retry time.Duration
	// Lease, when set, lets one replica at a time run the sealer; the others stand by.
	Lease follower.Lease
	// Signer, when set, signs every checkpoint's tree head with the audit key (Checkpoint.Note);
	// the key's name is the checkpoints' origin. Nil leaves checkpoints unsigned.
	Signer note.Signer
}

func (o *SealerOptions) validate() error {
	switch {
	case o.CheckpointEvery < 0:
		return fmt.Errorf("audit: checkpoint every (%d) cannot be negative", o.CheckpointEvery)
	case o.CheckpointInterval < 0:
		return fmt.Errorf("audit: checkpoint interval (%v) cannot be negative", o.CheckpointInterval)
	case o.BatchSize < 0 || o.BatchSize > MaxSealBatch:
		return fmt.Errorf("audit: batch size (%d) must be between 1 and %d", o.BatchSize, MaxSealBatch)
	case o.Retry < 0:
		return fmt.Errorf("audit: retry (%v) cannot be negative", o.Retry)
	}
	if o.CheckpointEvery == 0 {
		o.CheckpointEvery = DefaultCheckpointEvery
	}
	if o.CheckpointInterval == 0 {
		o.CheckpointInterval = DefaultCheckpointInterval
	}
	if o.BatchSize == 0 {
		o.BatchSize = DefaultSealBatch
	}
	if o.Retry == 0 {
		o.Retry = DefaultSealRetry
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Sealer follows the committed log and seals each event into the ledger, in batches, with a
// checkpoint every CheckpointEvery events or CheckpointInterval. It reads the log like any other
// follower, so appends never wait for it. Several sealers on one database are safe (each batch
// checks the ledger's tail) but pointless.
type Sealer struct {
	o SealerOptions

	mu       sync.Mutex // one Run or CatchUp at a time
	chain    *Chain
	tree     *tree
	tail     Seal
	lastCP   Checkpoint
	lastCPAt time.Time
	seals    []Seal
	treeBuf  []byte // the tree's canonical bytes, reused
	// chainOnly leaves the tree out, as the sealer was before it: for the benchmark's reference.
	chainOnly bool
}

// NewSealer returns a sealer. A nil store or ledger is a wiring mistake and panics.
func NewSealer(o SealerOptions) (*Sealer, error) {
	if o.Store == nil || o.Ledger == nil {
		panic("audit: NewSealer needs a store and a ledger")
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	return &Sealer{o: o}, nil
}

// load resumes from the ledger's tail.
func (s *Sealer) load(ctx context.Context) error {
	tail, err := s.o.Ledger.Tail(ctx)
	if err != nil {
		return err
	}
	cp, ok, err := s.o.Ledger.LastCheckpoint(ctx)
	if err != nil {
		return err
	}
	t := newTree(false)
	if !s.chainOnly {
		if t, err = s.loadTree(ctx, tail.Ordinal); err != nil {
			return err
		}
	}
	s.tail, s.chain, s.tree, s.lastCP = tail, ResumeChain(tail.Ordinal, tail.Chain), t, cp
	s.lastCPAt = time.Now()
	if ok {
		s.lastCPAt = cp.SealedAt
	}
	return nil
}

// limit is how many events the next batch may take: a full checkpoint span ends a batch, so that
// under a steady stream checkpoints fall every CheckpointEvery events exactly.
func (s *Sealer) limit() int {
	left := uint64(s.o.CheckpointEvery) - min(uint64(s.o.CheckpointEvery), s.chain.Ordinal()-s.lastCP.Ordinal)
	return int(max(1, min(uint64(s.o.BatchSize), left)))
}

// seal chains events, the next ones of the log, and writes their seals, with a checkpoint when
// one is due or checkpoint is set. On failure nothing is written and the chain is as before.
func (s *Sealer) seal(ctx context.Context, events []eventstore.Event, checkpoint bool) error {
	prevOrdinal, prevHead := s.chain.Ordinal(), s.chain.Head()
	prevTree := s.tree.save()
	// The tree hashes the batch while the chain does: each needs a pass of SHA-256 over every
	// event's canonical bytes, and neither needs the other's.
	var treeDone chan struct{}
	if !s.chainOnly && len(events) > 0 {
		treeDone = make(chan struct{})
		go func() {
			defer close(treeDone)
			buf := s.treeBuf
			for i, e := range events {
				buf = AppendCanonical(buf[:0], prevOrdinal+uint64(i)+1, e)
				s.tree.add(buf)
			}
			if cap(buf) <= 1<<20 { // one huge event must not pin its buffer
				s.treeBuf = buf
			}
		}()
	}
	seals := s.seals[:0]
	for _, e := range events {
		o, h := s.chain.Add(e)
		seals = append(seals, Seal{Ordinal: o, Position: e.GlobalPosition, EventID: e.ID, Chain: h})
	}
	s.seals = seals[:0]
	if treeDone != nil {
		<-treeDone
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	ord := s.chain.Ordinal()
	var cp *Checkpoint
	if ord > s.lastCP.Ordinal && (checkpoint || ord-s.lastCP.Ordinal >= uint64(s.o.CheckpointEvery) || now.Sub(s.lastCPAt) >= s.o.CheckpointInterval) {
		pos := s.tail.Position
		if len(seals) > 0 {
			pos = seals[len(seals)-1].Position
		}
		cp = &Checkpoint{Ordinal: ord, Position: pos, Chain: s.chain.Head(), SealedAt: now, Root: s.tree.root()}
		if s.o.Signer != nil {
			signed, err := TreeHead{Origin: s.o.Signer.Name(), Size: ord, Root: cp.Root, Time: now}.Sign(s.o.Signer)
			if err != nil {
				s.chain, s.tree = ResumeChain(prevOrdinal, prevHead), prevTree.restore()
				return err
			}
			cp.Note = string(signed)
		}
	}
	if len(seals) == 0 && cp == nil {
		return nil
	}
	if err := s.tree.err; err != nil {
		s.chain, s.tree = ResumeChain(prevOrdinal, prevHead), prevTree.restore()
		return err
	}
	if err := s.o.Ledger.write(ctx, prevOrdinal, seals, s.tree.pending(), cp); err != nil {
		s.chain, s.tree = ResumeChain(prevOrdinal, prevHead), prevTree.restore()
		return err
	}
	if len(seals) > 0 {
		s.tail = seals[len(seals)-1]
	}
	if cp != nil {
		s.lastCP, s.lastCPAt = *cp, now
		s.publish(ctx)
	}
	return nil
}

// publish hands the checkpoints not yet published to the publisher, oldest first. A failure is
// logged; the checkpoints stay pending and are handed again at the next checkpoint or tick.
func (s *Sealer) publish(ctx context.Context) {
	if s.o.Publisher == nil {
		return
	}
	for c, err := range s.o.Ledger.unpublished(ctx) {
		if err == nil {
			err = s.o.Publisher.PublishCheckpoint(ctx, c)
		}
		if err == nil {
			err = s.o.Ledger.markPublished(ctx, c.Ordinal, time.Now())
		}
		if err != nil {
			if ctx.Err() == nil {
				s.o.Logger.Warn("audit: publish checkpoint", "ordinal", c.Ordinal, "err", err)
			}
			return
		}
	}
}

// CatchUp seals every event the log holds now, ends with a checkpoint if anything was sealed
// since the last one, publishes what is pending, and returns the last seal.
func (s *Sealer) CatchUp(ctx context.Context) (Seal, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.load(ctx); err != nil {
		return Seal{}, err
	}
	batch := make([]eventstore.Event, 0, s.limit())
	// Read ahead while a batch is written: the log and the ledger are worked on at once.
	after := s.tail.Position
	for e, err := range prefetch(ctx, s.o.BatchSize, func(ctx context.Context) iter.Seq2[eventstore.Event, error] {
		return s.o.Store.ReadAll(ctx, after, eventstore.Filter{})
	}) {
		if err != nil {
			return s.tail, fmt.Errorf("audit: read the log after position %d: %w", after, err)
		}
		batch = append(batch, e)
		if len(batch) >= s.limit() {
			if err := s.seal(ctx, batch, false); err != nil {
				return s.tail, err
			}
			clear(batch)
			batch = batch[:0]
		}
	}
	if err := s.seal(ctx, batch, true); err != nil {
		return s.tail, err
	}
	s.publish(ctx)
	return s.tail, nil
}

// Run follows the log and seals it until ctx ends, then returns nil. Failures (the database or
// the store unavailable) are logged, and Run resumes from the ledger after Retry. The follower
// engine does the following; the sealer is its step (see sealStep).
func (s *Sealer) Run(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, err := follower.New(follower.Options{
		Name: SealerName, Store: s.o.Store, BatchSize: s.o.BatchSize,
		FlushEvery: min(s.o.CheckpointInterval, time.Second), Linger: sealLinger,
		RetryMin: s.o.Retry, RetryMax: s.o.Retry,
		FailLevel: slog.LevelError, Lease: s.o.Lease, Logger: s.o.Logger,
	}, sealStep{s})
	if err != nil {
		return err
	}
	return f.Run(ctx)
}

// sealLinger is how long a live batch of the sealer waits for more events: under load, one seal
// transaction (seven statements) per 50 ms instead of one per sign-in or two. Nobody waits on the
// sealer; checkpoints are signed at CheckpointInterval anyway.
const sealLinger = 50 * time.Millisecond

// SealerName is the sealer's name as a follower (status, metrics, lease).
const SealerName = "audit-sealer"

// sealStep is the sealer as a follower step: the durable position is the ledger's tail.
type sealStep struct{ s *Sealer }

func (st sealStep) Resume(ctx context.Context) (uint64, error) {
	if err := st.s.load(ctx); err != nil {
		return 0, err
	}
	st.s.publish(ctx)
	return st.s.tail.Position, nil
}

// Apply seals batch, cut so that a full checkpoint span ends a transaction.
func (st sealStep) Apply(ctx context.Context, batch []eventstore.Event) (uint64, error) {
	s := st.s
	for len(batch) > 0 {
		n := min(len(batch), s.limit())
		if err := s.seal(ctx, batch[:n], false); err != nil {
			return s.tail.Position, err
		}
		batch = batch[n:]
	}
	return s.tail.Position, nil
}

// Flush writes a checkpoint for the events sealed since the last one, once the interval is over.
func (st sealStep) Flush(ctx context.Context) (uint64, error) {
	if err := st.s.seal(ctx, nil, false); err != nil {
		return st.s.tail.Position, err
	}
	st.s.publish(ctx)
	return st.s.tail.Position, nil
}
