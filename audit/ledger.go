package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"iter"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/idlog/idlog/lease"
	"github.com/idlog/idlog/migrations"
)

// Seal is one row of the ledger: the event at Ordinal in the global order, where it was in the
// log when it was sealed, and the chain value up to it.
type Seal struct {
	Ordinal  uint64    `json:"ordinal"`
	Position uint64    `json:"position"`
	EventID  uuid.UUID `json:"event_id"`
	Chain    Hash      `json:"chain"`
}

// Checkpoint is a sealed point of the chain: its head at Ordinal, the event there at Position.
// Checkpoints are what a CheckpointPublisher hands to a party outside the database.
type Checkpoint struct {
	Ordinal  uint64    `json:"ordinal"`
	Position uint64    `json:"position"`
	Chain    Hash      `json:"chain"`
	SealedAt time.Time `json:"sealed_at"`
	// Root is the Merkle tree's root at Ordinal (its size); zero for checkpoints sealed before
	// the tree existed (migration 00120).
	Root Hash `json:"root"`
	// Note is the checkpoint signed with the audit key (TreeHead), empty when the sealer had none.
	Note string `json:"note,omitempty"`
}

// errLedgerMoved: another sealer wrote to the ledger since this one read its tail.
var errLedgerMoved = errors.New("audit: the ledger moved under the sealer (another sealer runs?)")

// ledgerPage is how many ledger rows one query reads.
const ledgerPage = 5000

// ledgerLock names the Postgres advisory lock that serialises sealers.
const ledgerLock = 0x69646c6f67617564 // "idlogaud"

// Ledger is the audit tables (migrations 00060) in the event store's database. It is safe for
// concurrent use.
type Ledger struct {
	db      *sqlx.DB
	dialect migrations.Dialect

	proofs proofCache
}

// NewLedger returns the ledger in db, the event store's database. Verify only reads it; a Sealer
// writes, so on SQLite it needs a writable pool whose write transactions wait for the file's lock
// (busy_timeout and _txlock=immediate, as projections.OpenSQLite opens it): the store's own pool
// is read-only. A nil db is a wiring mistake and panics.
func NewLedger(db *sqlx.DB, d migrations.Dialect) (*Ledger, error) {
	if db == nil {
		panic("audit: NewLedger needs a database")
	}
	if d != migrations.Postgres && d != migrations.SQLite {
		return nil, fmt.Errorf("audit: dialect %q is not postgres or sqlite", d)
	}
	return &Ledger{db: db, dialect: d}, nil
}

func (l *Ledger) q(query string) string {
	if l.dialect == migrations.Postgres {
		return sqlx.Rebind(sqlx.DOLLAR, query)
	}
	return query
}

func (l *Ledger) timeArg(t time.Time) any {
	if l.dialect == migrations.Postgres {
		return t.UTC()
	}
	return t.UnixMicro()
}

// dbTime scans a time column of either dialect: timestamptz, or unix microseconds.
type dbTime struct{ time.Time }

func (t *dbTime) Scan(v any) error {
	switch v := v.(type) {
	case time.Time:
		t.Time = v.UTC()
	case int64:
		t.Time = time.UnixMicro(v).UTC()
	default:
		return fmt.Errorf("audit: cannot scan %T into a time", v)
	}
	return nil
}

// hashBytes scans a 32-byte chain column.
type hashBytes struct{ h *Hash }

func (b hashBytes) Scan(v any) error {
	raw, ok := v.([]byte)
	if !ok || len(raw) != len(b.h) {
		return fmt.Errorf("audit: chain column holds %T of %d bytes, want 32 bytes", v, len(raw))
	}
	copy(b.h[:], raw)
	return nil
}

func (l *Ledger) err(op string, err error) error {
	return fmt.Errorf("audit: ledger: %s: %w", op, err)
}

// Tail returns the last sealed event: the zero Seal when nothing is sealed.
func (l *Ledger) Tail(ctx context.Context) (Seal, error) {
	var s Seal
	err := l.db.QueryRowContext(ctx, `SELECT ordinal, position, event_id, chain FROM audit_events ORDER BY ordinal DESC LIMIT 1`).
		Scan(&s.Ordinal, &s.Position, &s.EventID, hashBytes{&s.Chain})
	if errors.Is(err, sql.ErrNoRows) {
		return Seal{}, nil
	}
	if err != nil {
		return Seal{}, l.err("read tail", err)
	}
	return s, nil
}

// LastCheckpoint returns the newest sealed checkpoint; ok is false when there is none.
func (l *Ledger) LastCheckpoint(ctx context.Context) (c Checkpoint, ok bool, err error) {
	var at dbTime
	var root, signed []byte
	err = l.db.QueryRowContext(ctx, `SELECT ordinal, position, chain, sealed_at, root, note FROM audit_checkpoints ORDER BY ordinal DESC LIMIT 1`).
		Scan(&c.Ordinal, &c.Position, hashBytes{&c.Chain}, &at, &root, &signed)
	if errors.Is(err, sql.ErrNoRows) {
		return Checkpoint{}, false, nil
	}
	if err != nil {
		return Checkpoint{}, false, l.err("read last checkpoint", err)
	}
	c.SealedAt = at.Time
	copy(c.Root[:], root)
	c.Note = string(signed)
	return c, true, nil
}

// Find returns the seal of the event with id; ok is false when the ledger does not know it.
func (l *Ledger) Find(ctx context.Context, id uuid.UUID) (s Seal, ok bool, err error) {
	arg := any(id.String())
	err = l.db.QueryRowContext(ctx, l.q(`SELECT ordinal, position, event_id, chain FROM audit_events WHERE event_id = ?`), arg).
		Scan(&s.Ordinal, &s.Position, &s.EventID, hashBytes{&s.Chain})
	if errors.Is(err, sql.ErrNoRows) {
		return Seal{}, false, nil
	}
	if err != nil {
		return Seal{}, false, l.err("find event "+id.String(), err)
	}
	return s, true, nil
}

// Seals yields the ledger's rows with an ordinal in (after, upTo], in order, a page at a time.
// Ordinals are dense, so each page is asked for as an exact range: the query stays cheap whatever
// plan the database picks (a freshly filled table has no statistics), and a hole in the ledger
// only makes a page short.
func (l *Ledger) Seals(ctx context.Context, after, upTo uint64) iter.Seq2[Seal, error] {
	query := `SELECT ordinal, position, event_id, chain FROM audit_events WHERE ordinal > ? AND ordinal <= ? ORDER BY ordinal`
	if l.dialect == migrations.Postgres {
		// The id's 16 bytes: lib/pq would write a uuid out as 36 bytes of text for sealOf to parse.
		query = `SELECT ordinal, position, uuid_send(event_id), chain FROM audit_events WHERE ordinal > $1 AND ordinal <= $2 ORDER BY ordinal`
	}
	return func(yield func(Seal, error) bool) {
		page := make([]Seal, 0, ledgerPage)
		for lo := after; lo < upTo; {
			hi := lo + min(ledgerPage, upTo-lo)
			rows, err := l.db.QueryContext(ctx, query, int64(lo), int64(hi))
			if err != nil {
				yield(Seal{}, l.err("read seals", err))
				return
			}
			page = page[:0]
			// Scanned into plain values and decoded here: through uuid's and hashBytes' Scan
			// methods and uint64 fields, database/sql takes its reflection path for every column,
			// which made reading the ledger cost as much as reading the log.
			var ord, pos int64
			var id, chain sql.RawBytes
			for rows.Next() {
				s, err := Seal{}, rows.Scan(&ord, &pos, &id, &chain)
				if err == nil {
					s, err = sealOf(ord, pos, id, chain)
				}
				if err != nil {
					rows.Close()
					yield(Seal{}, l.err("read seals", err))
					return
				}
				page = append(page, s)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				yield(Seal{}, l.err("read seals", err))
				return
			}
			for _, s := range page {
				if !yield(s, nil) {
					return
				}
			}
			lo = hi
		}
	}
}

// sealOf decodes a ledger row read as plain values: the event id as text (or 16 bytes, as
// uuid.UUID's Scan also takes it), the chain as 32 bytes.
func sealOf(ord, pos int64, id, chain []byte) (Seal, error) {
	s := Seal{Ordinal: uint64(ord), Position: uint64(pos)}
	if len(id) == len(s.EventID) {
		copy(s.EventID[:], id)
	} else {
		var err error
		if s.EventID, err = uuid.ParseBytes(id); err != nil {
			return Seal{}, fmt.Errorf("ordinal %d: event id %q: %w", ord, id, err)
		}
	}
	if len(chain) != len(s.Chain) {
		return Seal{}, fmt.Errorf("ordinal %d: chain column holds %d bytes, want 32 bytes", ord, len(chain))
	}
	copy(s.Chain[:], chain)
	return s, nil
}

// Checkpoints yields the sealed checkpoints with an ordinal in (after, upTo], in order.
func (l *Ledger) Checkpoints(ctx context.Context, after, upTo uint64) iter.Seq2[Checkpoint, error] {
	return l.checkpoints(ctx, `SELECT ordinal, position, chain, sealed_at, root, note FROM audit_checkpoints
		WHERE ordinal > ? AND ordinal <= ? ORDER BY ordinal LIMIT ?`, after, upTo)
}

// unpublished yields the checkpoints no publisher has taken yet, in order.
func (l *Ledger) unpublished(ctx context.Context) iter.Seq2[Checkpoint, error] {
	return l.checkpoints(ctx, `SELECT ordinal, position, chain, sealed_at, root, note FROM audit_checkpoints
		WHERE published_at IS NULL AND ordinal > ? AND ordinal <= ? ORDER BY ordinal LIMIT ?`, 0, 1<<63-1)
}

func (l *Ledger) checkpoints(ctx context.Context, query string, after, upTo uint64) iter.Seq2[Checkpoint, error] {
	query = l.q(query)
	return func(yield func(Checkpoint, error) bool) {
		for {
			rows, err := l.db.QueryContext(ctx, query, int64(after), int64(upTo), ledgerPage)
			if err != nil {
				yield(Checkpoint{}, l.err("read checkpoints", err))
				return
			}
			var page []Checkpoint
			for rows.Next() {
				var c Checkpoint
				var at dbTime
				var root, signed []byte
				if err := rows.Scan(&c.Ordinal, &c.Position, hashBytes{&c.Chain}, &at, &root, &signed); err != nil {
					rows.Close()
					yield(Checkpoint{}, l.err("read checkpoints", err))
					return
				}
				c.SealedAt = at.Time
				copy(c.Root[:], root)
				c.Note = string(signed)
				page = append(page, c)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				yield(Checkpoint{}, l.err("read checkpoints", err))
				return
			}
			for _, c := range page {
				if !yield(c, nil) {
					return
				}
				after = c.Ordinal
			}
			if len(page) < ledgerPage {
				return
			}
		}
	}
}

// markPublished records that c was handed to the publisher.
func (l *Ledger) markPublished(ctx context.Context, ordinal uint64, at time.Time) error {
	_, err := l.db.ExecContext(ctx, l.q(`UPDATE audit_checkpoints SET published_at = ? WHERE ordinal = ?`), l.timeArg(at), int64(ordinal))
	if err != nil {
		return l.err(fmt.Sprintf("mark checkpoint %d published", ordinal), err)
	}
	return nil
}

// write appends seals after the ledger's tail, which must still be at ordinal tail, the tree
// tiles they changed, and the checkpoint cp if not nil, in one transaction. A ledger that moved fails with
// errLedgerMoved and writes nothing.
func (l *Ledger) write(ctx context.Context, tail uint64, seals []Seal, tiles []treeTile, cp *Checkpoint) error {
	tx, err := l.db.BeginTxx(ctx, nil)
	if err != nil {
		return l.err("begin", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after commit
	if l.dialect == migrations.Postgres {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(ledgerLock)); err != nil {
			return l.err("lock", err)
		}
	}
	// Under a lease, only the sealer's owner writes: a stalled one that wakes up is refused.
	if err := lease.Check(ctx, tx, l.dialect); err != nil {
		return err
	}
	var last int64
	if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(ordinal), 0) FROM audit_events`).Scan(&last); err != nil {
		return l.err("read tail", err)
	}
	if uint64(last) != tail {
		return fmt.Errorf("%w: expected ordinal %d, found %d", errLedgerMoved, tail, last)
	}
	if len(seals) > 0 {
		if l.dialect == migrations.Postgres {
			err = l.insertPostgres(ctx, tx, seals)
		} else {
			err = l.insertSQLite(ctx, tx, seals)
		}
		if err != nil {
			return l.err("insert seals", err)
		}
	}
	if len(tiles) > 0 {
		if err := l.insertTiles(ctx, tx, tiles); err != nil {
			return l.err("write tree", err)
		}
	}
	if cp != nil {
		var signed any
		if cp.Note != "" {
			signed = cp.Note
		}
		_, err := tx.ExecContext(ctx, l.q(`INSERT INTO audit_checkpoints (ordinal, position, chain, sealed_at, root, note) VALUES (?, ?, ?, ?, ?, ?)`),
			int64(cp.Ordinal), int64(cp.Position), cp.Chain[:], l.timeArg(cp.SealedAt), cp.Root[:], signed)
		if err != nil {
			return l.err(fmt.Sprintf("insert checkpoint %d", cp.Ordinal), err)
		}
	}
	if err := tx.Commit(); err != nil {
		return l.err("commit", err)
	}
	return nil
}

// insertPostgres writes all seals in one statement: one round trip per batch.
func (l *Ledger) insertPostgres(ctx context.Context, tx *sqlx.Tx, seals []Seal) error {
	ords := make([]int64, len(seals))
	poss := make([]int64, len(seals))
	ids := make([]string, len(seals))
	chains := make([][]byte, len(seals))
	for i := range seals {
		s := &seals[i]
		ords[i], poss[i], ids[i], chains[i] = int64(s.Ordinal), int64(s.Position), s.EventID.String(), s.Chain[:]
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO audit_events (ordinal, position, event_id, chain)
		SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::uuid[], $4::bytea[])`,
		pq.Array(ords), pq.Array(poss), pq.Array(ids), pq.Array(chains))
	return err
}

// sqliteRowsPerInsert keeps a statement's bind variables (4 a row) well below SQLite's limit.
const sqliteRowsPerInsert = 500

func (l *Ledger) insertSQLite(ctx context.Context, tx *sqlx.Tx, seals []Seal) error {
	for len(seals) > 0 {
		n := min(len(seals), sqliteRowsPerInsert)
		var b strings.Builder
		b.WriteString(`INSERT INTO audit_events (ordinal, position, event_id, chain) VALUES `)
		args := make([]any, 0, 4*n)
		for i, s := range seals[:n] {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString("(?,?,?,?)")
			args = append(args, int64(s.Ordinal), int64(s.Position), s.EventID.String(), s.Chain[:])
		}
		if _, err := tx.ExecContext(ctx, b.String(), args...); err != nil {
			return err
		}
		seals = seals[n:]
	}
	return nil
}
