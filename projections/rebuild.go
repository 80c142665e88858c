package projections

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/migrations"
)

// DefaultRebuildBatchSize is the default of Options.RebuildBatchSize, the most events one
// transaction of a rebuild's first catch-up applies. A rebuild writes a generation nobody reads yet, from events long committed: large transactions cost
// fewer commits, checkpoint moves and statements per event, and the projectors' bulk writes (COPY on
// PostgreSQL, see Tx.Bulk) pay off on large batches.
const DefaultRebuildBatchSize = 10000

// readAhead is how many batches the shared read of the log may be ahead of the slowest build:
// reading the next batches overlaps with applying this one, in bounded memory.
const readAhead = 2

// dropChunk is how many rows of a retired generation one statement deletes, so that a large
// table is dropped in short transactions that never hold the write lock for long.
const dropChunk = 5000

// Rebuild rebuilds the named projectors' read models from position 0, each into a new generation
// beside the live one, and swaps each in once it has reached the live one's checkpoint; queries
// read the live generations throughout. It returns after the swaps and the removal of the retired
// rows, with the errors of the projectors that could not be rebuilt (the others are).
//
// The projectors' first catch-up shares one read of the log (a scan, when the store is an
// eventstore.Scanner), so rebuilding all of them costs one pass over it; the read runs up to
// readAhead batches of Options.RebuildBatchSize events ahead, and the projectors apply each batch in
// parallel, one transaction per batch and projector. Rebuild may run in another process than the one running the projectors live
// (`idlog projections rebuild` beside `idlog serve`): they meet in the database. A live runner
// keeps writing its generation until the swap, then goes on in the new one from the new one's
// checkpoint. A rebuild started while another one of the same projector runs supersedes it
// (ErrSuperseded there). A failing event ends that projector's rebuild with its error; its live
// generation stays as it was.
func (r *Runtime) Rebuild(ctx context.Context, names ...string) error {
	if len(names) == 0 {
		return fmt.Errorf("%w: no projector named", ErrUnknownProjector)
	}
	var builds []*build
	for _, name := range names {
		rn := r.byName[name]
		if rn == nil {
			return fmt.Errorf("%w: %q", ErrUnknownProjector, name)
		}
		if slices.ContainsFunc(builds, func(b *build) bool { return b.rn == rn }) {
			continue
		}
		builds = append(builds, &build{rn: rn, log: r.o.Logger.With("projector", name),
			first: make(chan batchItem, readAhead), quit: make(chan struct{})})
	}
	for _, b := range builds {
		if _, _, err := r.ensure(ctx, b.rn.name); err != nil {
			return err
		}
		gen, err := r.startBuild(ctx, b.rn.name)
		if err != nil {
			return err
		}
		b.gen = gen
		b.log.Info("rebuild started", "generation", gen)
		if err := r.dropRetired(ctx, b.rn); err != nil {
			return err
		}
		tables, err := r.buildTables(ctx, b.rn, gen)
		if err != nil {
			return err
		}
		b.tables = tables
		b.rn.mu.Lock()
		if b.rn.builds == nil {
			b.rn.builds = map[int64]map[string]string{}
		}
		b.rn.builds[gen] = tables
		b.rn.mu.Unlock()
		defer func() {
			b.rn.mu.Lock()
			delete(b.rn.builds, b.gen)
			b.rn.mu.Unlock()
		}()
	}

	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go r.readForBuilds(rctx, builds)
	errs := make([]error, len(builds))
	var wg sync.WaitGroup
	for i, b := range builds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(b.quit)
			if err := r.rebuild(ctx, b); err != nil {
				errs[i] = fmt.Errorf("projections: rebuild %s (generation %d): %w", b.rn.name, b.gen, err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// build is one projector's rebuild.
type build struct {
	rn  *runner
	gen int64
	// tables maps the projector's tables partitioned by generation to the detached ones this
	// build loads (see buildTables); nil if none.
	tables map[string]string
	log    *slog.Logger
	first  chan batchItem // the shared read of the log, for the first catch-up
	quit   chan struct{}  // closed when the build ends, so the shared read stops feeding it
}

// batchItem is a batch of the shared read, or its failure. Every build reads the same slices, and
// none may change them.
type batchItem struct {
	events []eventstore.Event
	// decoded[i] is events[i] decoded once for every build (see Tx.decode), nil if no build
	// handles it or it does not decode (the projector then meets the error itself).
	decoded []domain.Event
	err     error
}

// lookup returns e decoded by the shared read, if it was.
func (b *batchItem) lookup(e eventstore.Event) (domain.Event, bool) {
	i, ok := slices.BinarySearchFunc(b.events, e.GlobalPosition, func(x eventstore.Event, p uint64) int {
		return cmp.Compare(x.GlobalPosition, p)
	})
	if !ok || b.decoded[i] == nil {
		return nil, false
	}
	return b.decoded[i], true
}

// sharedBatchKey carries the shared read's batch in the context of its transactions.
type sharedBatchKey struct{}

// readForBuilds reads the log once and hands every batch of it to every build still running.
func (r *Runtime) readForBuilds(ctx context.Context, builds []*build) {
	defer func() {
		for _, b := range builds {
			close(b.first)
		}
	}()
	running := slices.Clone(builds)
	send := func(it batchItem) bool {
		for i := 0; i < len(running); i++ {
			select {
			case running[i].first <- it:
			case <-running[i].quit:
				running = slices.Delete(running, i, i+1)
				i--
			case <-ctx.Done():
				return false
			}
		}
		return len(running) > 0
	}
	read := r.o.Store.ReadAll(ctx, 0, eventstore.Filter{})
	if sc, ok := r.o.Store.(eventstore.Scanner); ok {
		read = sc.ScanAll(ctx, 0)
	}
	size := r.o.RebuildBatchSize
	// The events any build handles are decoded here, once for all of them, while the builds apply
	// the batches before.
	reg := domain.NewEventRegistry()
	decode := func(events []eventstore.Event) batchItem {
		it := batchItem{events: events, decoded: make([]domain.Event, len(events))}
		for i, e := range events {
			if slices.ContainsFunc(running, func(b *build) bool { return r.classify(b.rn, e) == handle }) {
				if de, err := reg.Decode(e.Type, e.SchemaVersion, e.Data); err == nil {
					it.decoded[i] = de
				}
			}
		}
		return it
	}
	batch := make([]eventstore.Event, 0, size)
	for e, err := range read {
		if err != nil {
			if len(batch) == 0 || send(decode(batch)) {
				send(batchItem{err: err})
			}
			return
		}
		batch = append(batch, e)
		if len(batch) == size {
			if !send(decode(batch)) {
				return
			}
			batch = make([]eventstore.Event, 0, size)
		}
	}
	if len(batch) > 0 {
		send(decode(batch))
	}
}

// rebuild runs one build: the first catch-up from the shared read, then rounds of its own reads
// until the swap.
func (r *Runtime) rebuild(ctx context.Context, b *build) error {
	own := func(ctx context.Context, after uint64) iter.Seq2[eventstore.Event, error] {
		return r.o.Store.ReadAll(ctx, after, eventstore.Filter{})
	}
	started, lastLog, events := time.Now(), time.Now(), 0
	onCommit := func(pos uint64, n int) {
		events += n
		if time.Since(lastLog) >= 5*time.Second {
			lastLog = time.Now()
			b.log.Info("rebuilding", "generation", b.gen, "position", pos, "events", events,
				"events_per_second", int(float64(events)/time.Since(started).Seconds()))
		}
	}
	// The first catch-up, from the shared read; then catch up with the log as it is now, and try
	// to swap. The live generation may have moved on meanwhile, and then the next round reads what
	// it has seen.
	pos, err := r.applyShared(ctx, b, onCommit)
	if err == nil && len(b.tables) > 0 {
		attached := time.Now()
		if err = r.attachBuild(ctx, b); err == nil {
			b.log.Info("rebuilt tables attached, indexes built", "generation", b.gen, "seconds", time.Since(attached).Seconds())
		}
	}
	for err == nil {
		var swapped bool
		if swapped, err = r.trySwap(ctx, b.rn.name, b.gen, pos); err != nil || swapped {
			break
		}
		pos, err = r.follow(ctx, b.rn, b.gen, pos, roleBuild, own, onCommit)
	}
	if err != nil {
		return err
	}
	b.log.Info("rebuilt generation swapped in", "generation", b.gen, "position", pos, "events", events,
		"seconds", time.Since(started).Seconds())
	return r.dropRetired(ctx, b.rn)
}

// applyShared applies the shared read's batches to a build's generation, one transaction per
// batch (at most), and returns the last position it passed, its checkpoint saved.
func (r *Runtime) applyShared(ctx context.Context, b *build, onCommit func(uint64, int)) (uint64, error) {
	st := &genStep{r: r, rn: b.rn, gen: b.gen, rl: roleBuild, cur: cursor{savedAt: time.Now()}, onCommit: onCommit}
	for {
		select {
		case it, ok := <-b.first:
			switch {
			case !ok:
				return st.cur.pos, r.flush(ctx, b.rn, b.gen, roleBuild, &st.cur)
			case it.err != nil:
				return st.cur.pos, it.err
			}
			if _, err := st.Apply(context.WithValue(ctx, sharedBatchKey{}, &it), it.events); err != nil {
				return st.cur.pos, err
			}
		case <-ctx.Done():
			return st.cur.pos, ctx.Err()
		}
	}
}

// startBuild marks a new generation as building, with a checkpoint at 0. Generations only grow,
// so a retired one is never written again.
func (r *Runtime) startBuild(ctx context.Context, name string) (int64, error) {
	defer r.lockWrites()()
	tx, done, err := beginWrite(ctx, r.o.DB, r.d)
	if err != nil {
		return 0, fmt.Errorf("projections: %s: begin rebuild: %w", name, err)
	}
	defer done()
	defer tx.Rollback() //nolint:errcheck // a no-op after commit
	var live int64
	var building sql.NullInt64
	if err := tx.QueryRowxContext(ctx, r.q.lockGeneration, name).Scan(&live, &building); err != nil {
		return 0, fmt.Errorf("projections: %s: read generation: %w", name, err)
	}
	if building.Valid {
		// Supersede the rebuild in progress: its next batch finds its checkpoint retired.
		var p int64
		if err := tx.QueryRowxContext(ctx, r.q.retire, name, building.Int64).Scan(&p); err != nil && !errors.Is(err, sql.ErrNoRows) {
			return 0, fmt.Errorf("projections: %s: retire generation %d: %w", name, building.Int64, err)
		}
	}
	var highest int64
	if err := tx.GetContext(ctx, &highest, r.q.maxGeneration, name); err != nil {
		return 0, fmt.Errorf("projections: %s: read generations: %w", name, err)
	}
	gen := max(live, building.Int64, highest) + 1
	if _, err := tx.ExecContext(ctx, r.q.startBuild, gen, name); err != nil {
		return 0, fmt.Errorf("projections: %s: start generation %d: %w", name, gen, err)
	}
	if _, err := tx.ExecContext(ctx, r.q.newCheckpoint, name, gen, r.d.time(time.Now())); err != nil {
		return 0, fmt.Errorf("projections: %s: checkpoint of generation %d: %w", name, gen, err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("projections: %s: start generation %d: %w", name, gen, err)
	}
	return gen, nil
}

// trySwap makes gen live if its checkpoint has reached the live generation's. The generation row
// is locked, so no batch of the live generation commits in between; readers switch at the
// commit.
func (r *Runtime) trySwap(ctx context.Context, name string, gen int64, pos uint64) (bool, error) {
	defer r.lockWrites()()
	tx, done, err := beginWrite(ctx, r.o.DB, r.d)
	if err != nil {
		return false, err
	}
	defer done()
	defer tx.Rollback() //nolint:errcheck // a no-op after commit
	var live int64
	var building sql.NullInt64
	if err := tx.QueryRowxContext(ctx, r.q.lockGeneration, name).Scan(&live, &building); err != nil {
		return false, fmt.Errorf("read generation: %w", err)
	}
	if !building.Valid || building.Int64 != gen {
		return false, ErrSuperseded
	}
	// Retiring the live checkpoint waits for the live batch in flight, if any, and reads where it
	// left the checkpoint; batches after it roll back. If the live generation is still ahead, the
	// retirement rolls back with this transaction and the rebuild reads on.
	var livePos int64
	if err := tx.QueryRowxContext(ctx, r.q.retire, name, live).Scan(&livePos); err != nil {
		return false, fmt.Errorf("retire the live checkpoint: %w", err)
	}
	if pos < uint64(livePos) {
		return false, nil
	}
	if _, err := tx.ExecContext(ctx, r.q.swap, gen, r.d.time(time.Now()), name, gen); err != nil {
		return false, fmt.Errorf("swap: %w", err)
	}
	return true, tx.Commit()
}

// dropRetired deletes the rows and checkpoints of every generation that is neither live nor
// building, a chunk per statement. Every generation that may hold rows has a checkpoint row,
// written when it started and deleted here only after its rows.
func (r *Runtime) dropRetired(ctx context.Context, rn *runner) error {
	var live int64
	var building sql.NullInt64
	if err := r.o.DB.QueryRowxContext(ctx, r.d.rebind(`SELECT live, building FROM projection_generations WHERE name = ?`), rn.name).Scan(&live, &building); err != nil {
		return fmt.Errorf("projections: %s: read generation: %w", rn.name, err)
	}
	keep := live
	if building.Valid {
		keep = building.Int64
	}
	var retired []int64
	if err := r.o.DB.SelectContext(ctx, &retired, r.d.rebind(`SELECT generation FROM projection_checkpoints
		WHERE name = ? AND generation <> ? AND generation <> ? ORDER BY generation`), rn.name, live, keep); err != nil {
		return fmt.Errorf("projections: %s: list retired generations: %w", rn.name, err)
	}
	parts, err := r.partitionedTables(ctx, rn)
	if err != nil {
		return err
	}
	for _, g := range retired {
		for _, t := range rn.p.Tables() {
			if slices.Contains(parts, t) {
				if err := r.dropPartition(ctx, t, g); err != nil {
					return fmt.Errorf("projections: %s: drop generation %d of %s: %w", rn.name, g, t, err)
				}
				continue
			}
			q := r.d.rebind(`DELETE FROM ` + t + ` WHERE rowid IN (SELECT rowid FROM ` + t + ` WHERE generation = ? LIMIT ?)`)
			if migrations.Dialect(r.d) == migrations.Postgres {
				q = `DELETE FROM ` + t + ` WHERE ctid = ANY (ARRAY(SELECT ctid FROM ` + t + ` WHERE generation = $1 LIMIT $2))`
			}
			for {
				unlock := r.lockWrites()
				res, err := r.o.DB.ExecContext(ctx, q, g, dropChunk)
				unlock()
				if err != nil {
					return fmt.Errorf("projections: %s: drop generation %d of %s: %w", rn.name, g, t, err)
				}
				if n, err := res.RowsAffected(); err != nil || n < dropChunk {
					break
				}
			}
		}
		unlock := r.lockWrites()
		_, err := r.o.DB.ExecContext(ctx, r.d.rebind(`DELETE FROM projection_checkpoints WHERE name = ? AND generation = ?`), rn.name, g)
		unlock()
		if err != nil {
			return fmt.Errorf("projections: %s: drop checkpoint of generation %d: %w", rn.name, g, err)
		}
	}
	return nil
}
