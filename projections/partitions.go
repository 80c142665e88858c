package projections

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/lib/pq"

	"github.com/idlog/idlog/migrations"
)

// Read-model tables partitioned by generation (PostgreSQL; migration 00240 makes activity one).
// Each generation of such a table is a table of its own, <table>_g<generation>:
//
//   - the live generation's is a partition, made when the projector first runs (ensure);
//   - a rebuild makes its generation's table detached, without indexes, and loads it (COPY
//     straight into it, see Tx.Table); after the first catch-up it attaches it, which builds the
//     indexes sorted, in one pass, instead of maintaining every B-tree row by row. Attaching takes
//     a SHARE UPDATE EXCLUSIVE lock on the parent, which reads and writes of the live generation do
//     not wait for; the table's CHECK on its generation spares the scan that would check its rows;
//   - a retired generation's is detached CONCURRENTLY (no lock that readers wait for) and dropped.
//
// Nobody reads a generation before it is live, and it is attached before the swap, so queries of
// the parent, pruned to the live generation, see the same rows as without partitions.

// partitionName is the table of generation gen of table.
func partitionName(table string, gen int64) string { return table + "_g" + strconv.FormatInt(gen, 10) }

// partitionedTables returns which of rn's tables are partitioned (PostgreSQL only), read once.
func (r *Runtime) partitionedTables(ctx context.Context, rn *runner) ([]string, error) {
	if migrations.Dialect(r.d) != migrations.Postgres {
		return nil, nil
	}
	rn.mu.Lock()
	if rn.partsKnown {
		defer rn.mu.Unlock()
		return rn.parts, nil
	}
	rn.mu.Unlock()
	var parts []string
	for _, t := range rn.p.Tables() {
		var p bool
		if err := r.o.DB.GetContext(ctx, &p, `SELECT coalesce((SELECT relkind = 'p' FROM pg_class WHERE oid = to_regclass($1)), false)`, t); err != nil {
			return nil, fmt.Errorf("projections: %s: is %s partitioned: %w", rn.name, t, err)
		}
		if p {
			parts = append(parts, t)
		}
	}
	rn.mu.Lock()
	rn.parts, rn.partsKnown = parts, true
	rn.mu.Unlock()
	return parts, nil
}

// partitionLock serialises the DDL of one table's partitions between processes (concurrent
// CREATE TABLE IF NOT EXISTS may fail on the catalog's unique indexes).
const partitionLock = `SELECT pg_advisory_xact_lock(hashtext('idlog.partitions.' || $1))`

// ensurePartitions makes the partitions of the live generation gen of rn's partitioned tables.
func (r *Runtime) ensurePartitions(ctx context.Context, rn *runner, gen int64) error {
	parts, err := r.partitionedTables(ctx, rn)
	if err != nil || len(parts) == 0 {
		return err
	}
	for _, t := range parts {
		var exists bool
		if err := r.o.DB.GetContext(ctx, &exists, `SELECT to_regclass($1) IS NOT NULL`, partitionName(t, gen)); err != nil {
			return fmt.Errorf("projections: %s: partition of generation %d: %w", rn.name, gen, err)
		}
		if exists {
			continue
		}
		err := r.ddl(ctx, t, `CREATE TABLE IF NOT EXISTS `+partitionName(t, gen)+` PARTITION OF `+t+` FOR VALUES IN (`+strconv.FormatInt(gen, 10)+`)`)
		if err != nil {
			return fmt.Errorf("projections: %s: partition of generation %d: %w", rn.name, gen, err)
		}
	}
	return nil
}

// ddl runs stmts in one transaction holding table's partitionLock.
func (r *Runtime) ddl(ctx context.Context, table string, stmts ...string) error {
	tx, err := r.o.DB.BeginTxx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after commit
	if _, err := tx.ExecContext(ctx, partitionLock, table); err != nil {
		return err
	}
	for _, s := range stmts {
		if _, err := tx.ExecContext(ctx, s); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// buildTables makes the detached, unindexed tables a rebuild of gen loads, and returns the
// projector's table names mapped to them (nil if none is partitioned).
func (r *Runtime) buildTables(ctx context.Context, rn *runner, gen int64) (map[string]string, error) {
	parts, err := r.partitionedTables(ctx, rn)
	if err != nil || len(parts) == 0 {
		return nil, err
	}
	m := map[string]string{}
	for _, t := range parts {
		p, g := partitionName(t, gen), strconv.FormatInt(gen, 10)
		// A table of that name can only be a leftover of a build of gen that never started.
		if err := r.ddl(ctx, t, `DROP TABLE IF EXISTS `+p,
			`CREATE TABLE `+p+` (LIKE `+t+` INCLUDING DEFAULTS, CHECK (generation = `+g+`))`); err != nil {
			return nil, fmt.Errorf("projections: %s: table of generation %d: %w", rn.name, gen, err)
		}
		m[t] = p
	}
	return m, nil
}

// attachBuild attaches the loaded tables of a rebuild (see buildTables), which builds their
// indexes, and analyses them for the planner, before the generation goes live.
func (r *Runtime) attachBuild(ctx context.Context, b *build) error {
	for t, p := range b.tables {
		var attached bool
		if err := r.o.DB.GetContext(ctx, &attached, `SELECT EXISTS (SELECT 1 FROM pg_inherits WHERE inhrelid = to_regclass($1))`, p); err != nil {
			return err
		}
		if !attached {
			if err := r.ddl(ctx, t, `ALTER TABLE `+t+` ATTACH PARTITION `+p+` FOR VALUES IN (`+strconv.FormatInt(b.gen, 10)+`)`); err != nil {
				if isUndefinedTable(err) {
					return ErrSuperseded // a newer rebuild dropped it
				}
				return fmt.Errorf("attach %s: %w", p, err)
			}
		}
		if _, err := r.o.DB.ExecContext(ctx, `ANALYZE `+p); err != nil && !isUndefinedTable(err) {
			return fmt.Errorf("analyze %s: %w", p, err)
		}
	}
	return nil
}

// dropPartition detaches generation g's table of table, if attached, and drops it.
func (r *Runtime) dropPartition(ctx context.Context, table string, g int64) error {
	p := partitionName(table, g)
	var state []bool // detach pending, if it is a partition
	if err := r.o.DB.SelectContext(ctx, &state, `SELECT inhdetachpending FROM pg_inherits WHERE inhrelid = to_regclass($1)`, p); err != nil {
		return err
	}
	if len(state) == 1 {
		// CONCURRENTLY waits for the queries that may read it, and blocks none; it cannot run in a
		// transaction. An interrupted one leaves the detach pending: FINALIZE ends it.
		q := `ALTER TABLE ` + table + ` DETACH PARTITION ` + p + ` CONCURRENTLY`
		if state[0] {
			q = `ALTER TABLE ` + table + ` DETACH PARTITION ` + p + ` FINALIZE`
		}
		if _, err := r.o.DB.ExecContext(ctx, q); err != nil && !isUndefinedTable(err) {
			return fmt.Errorf("detach %s: %w", p, err)
		}
	}
	if err := r.ddl(ctx, table, `DROP TABLE IF EXISTS `+p); err != nil {
		return fmt.Errorf("drop %s: %w", p, err)
	}
	return nil
}

// isUndefinedTable says whether err is PostgreSQL's undefined_table: a newer rebuild dropped
// the table of a superseded one.
func isUndefinedTable(err error) bool {
	var pe *pq.Error
	return errors.As(err, &pe) && pe.Code == "42P01"
}
