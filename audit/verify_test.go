package audit_test

import (
	"context"
	"testing"

	"github.com/google/uuid"

	"github.com/idlog/idlog/audit"
	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/migrations"
)

func TestCleanLogVerifies(t *testing.T) {
	t.Parallel()
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			e := b.open(t)
			if r := verify(t, e); !r.OK() || r.Events != 0 || r.Sealed.Ordinal != 0 {
				t.Fatalf("empty log: %+v", r)
			}
			seed(t, e.store, 12)
			log := logOf(t, e.store)
			if r := verify(t, e); !r.OK() || r.Unsealed != uint64(len(log)) || r.Verified != 0 {
				t.Fatalf("before sealing: want all %d events unsealed, got %+v", len(log), r)
			}
			tail := catchUp(t, e)
			if tail.Ordinal != uint64(len(log)) || tail.EventID != log[len(log)-1].ID || tail.Position != log[len(log)-1].GlobalPosition {
				t.Fatalf("sealed up to %+v, want the last of %d events", tail, len(log))
			}
			r := verify(t, e)
			if !r.OK() || r.Verified != uint64(len(log)) || r.Unsealed != 0 || r.Sealed != tail {
				t.Fatalf("after sealing: %+v", r)
			}
			// Checkpoints every 7 events, and one at the end of the catch-up.
			if want := uint64(len(log)/7 + 1); r.CheckpointsVerified != want || r.LastCheckpoint == nil || r.LastCheckpoint.Ordinal != tail.Ordinal {
				t.Fatalf("checkpoints: verified %d (want %d), last %+v", r.CheckpointsVerified, want, r.LastCheckpoint)
			}
			if r.Head != tail.Chain {
				t.Fatalf("head %s, sealed chain %s", r.Head, tail.Chain)
			}

			// Events appended after the seal are reported, not blamed.
			seed(t, e.store, 2)
			r = verify(t, e)
			if !r.OK() || r.Verified != uint64(len(log)) || r.Unsealed == 0 {
				t.Fatalf("with unsealed events: %+v", r)
			}
		})
	}
}

// TestVerifyNamesTampering alters a sealed log directly in SQL, as someone with database access
// would, and expects Verify to name what was done and to which event.
func TestVerifyNamesTampering(t *testing.T) {
	t.Parallel()
	type tamper struct {
		name string
		// do alters the log of 20+ events and returns the event Verify must name.
		do   func(t *testing.T, e *env, log []eventstore.Event) uuid.UUID
		kind audit.Kind
		// ordinal is where the problem must show.
		ordinal uint64
	}
	tampers := []tamper{
		{"data byte changed", func(t *testing.T, e *env, log []eventstore.Event) uuid.UUID {
			v := log[6]
			flipDataByte(t, e, v.ID)
			return v.ID
		}, audit.KindChanged, 7},
		{"metadata changed", func(t *testing.T, e *env, log []eventstore.Event) uuid.UUID {
			v := log[4]
			if e.dialect == migrations.Postgres {
				e.exec(t, `UPDATE events SET metadata = jsonb_set(metadata, '{ip}', '"198.51.100.1"') WHERE event_id = ?`, v.ID.String())
			} else {
				e.exec(t, `UPDATE events SET metadata = json_set(metadata, '$.ip', '198.51.100.1') WHERE event_id = ?`, v.ID.String())
			}
			return v.ID
		}, audit.KindChanged, 5},
		{"recorded_at changed", func(t *testing.T, e *env, log []eventstore.Event) uuid.UUID {
			v := log[9]
			if e.dialect == migrations.Postgres {
				e.exec(t, `UPDATE events SET recorded_at = recorded_at - interval '1 microsecond' WHERE event_id = ?`, v.ID.String())
			} else {
				e.exec(t, `UPDATE events SET recorded_at = recorded_at - 1 WHERE event_id = ?`, v.ID.String())
			}
			return v.ID
		}, audit.KindChanged, 10},
		{"event deleted", func(t *testing.T, e *env, log []eventstore.Event) uuid.UUID {
			v := log[3]
			e.exec(t, `DELETE FROM events WHERE event_id = ?`, v.ID.String())
			return v.ID
		}, audit.KindDeleted, 4},
		{"last event deleted", func(t *testing.T, e *env, log []eventstore.Event) uuid.UUID {
			v := log[len(log)-1]
			e.exec(t, `DELETE FROM events WHERE event_id = ?`, v.ID.String())
			return v.ID
		}, audit.KindDeleted, 0},
		{"two events swapped", func(t *testing.T, e *env, log []eventstore.Event) uuid.UUID {
			a, b := log[5], log[9]
			e.exec(t, `UPDATE events SET position = -1 WHERE position = ?`, int64(a.GlobalPosition))
			e.exec(t, `UPDATE events SET position = ? WHERE position = ?`, int64(a.GlobalPosition), int64(b.GlobalPosition))
			e.exec(t, `UPDATE events SET position = ? WHERE position = -1`, int64(b.GlobalPosition))
			return b.ID // now at a's place: the first event out of order
		}, audit.KindReordered, 6},
		{"event moved later", func(t *testing.T, e *env, log []eventstore.Event) uuid.UUID {
			a := log[2]
			e.exec(t, `UPDATE events SET position = ? WHERE position = ?`, int64(log[len(log)-1].GlobalPosition+1000), int64(a.GlobalPosition))
			return log[3].ID // found where a was sealed
		}, audit.KindReordered, 3},
		{"event moved beyond every transaction id", func(t *testing.T, e *env, log []eventstore.Event) uuid.UUID {
			// On PostgreSQL no transaction can ever end above this position: a reader that waits
			// for the read horizon to pass the newest position waits for ever.
			e.exec(t, `UPDATE events SET position = ? WHERE position = ?`, int64(1)<<62, int64(log[2].GlobalPosition))
			return log[3].ID
		}, audit.KindReordered, 3},
		{"event inserted", func(t *testing.T, e *env, log []eventstore.Event) uuid.UUID {
			after := log[7]
			pos := after.GlobalPosition + 1
			if e.dialect == migrations.SQLite {
				// SQLite's positions are dense: make room, as an intruder would.
				e.exec(t, `UPDATE events SET position = -(position + 1) WHERE position > ?`, int64(after.GlobalPosition))
				e.exec(t, `UPDATE events SET position = -position WHERE position < 0`)
			}
			id := uuid.New()
			e.exec(t, `INSERT INTO events (position, event_id, stream_id, stream_version, event_type, schema_version, data, metadata, recorded_at)
				VALUES (?, ?, 'user-ID00000000FF', 1, 'UserRegistered', 1, '{}', '{}', `+map[migrations.Dialect]string{
				migrations.Postgres: "now())", migrations.SQLite: "0)"}[e.dialect], int64(pos), id.String())
			return id
		}, audit.KindInserted, 9},
		{"ledger row deleted", func(t *testing.T, e *env, log []eventstore.Event) uuid.UUID {
			e.exec(t, `DELETE FROM audit_events WHERE ordinal = 6`)
			return log[5].ID
		}, audit.KindLedger, 6},
		{"event id changed", func(t *testing.T, e *env, log []eventstore.Event) uuid.UUID {
			id := uuid.New()
			e.exec(t, `UPDATE events SET event_id = ? WHERE event_id = ?`, id.String(), log[11].ID.String())
			return id
		}, audit.KindChanged, 12},
	}
	for _, b := range backends(t) {
		for _, tc := range tampers {
			t.Run(b.name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				e := b.open(t)
				seed(t, e.store, 14)
				catchUp(t, e)
				log := logOf(t, e.store)
				if r := verify(t, e); !r.OK() {
					t.Fatalf("before tampering: %v", r.Problem)
				}
				id := tc.do(t, e, log)
				r := verify(t, e)
				if r.OK() {
					t.Fatalf("tampering not detected: %+v", r)
				}
				p := r.Problem
				want := tc.ordinal
				if want == 0 {
					want = uint64(len(log))
				}
				if p.Kind != tc.kind || p.EventID != id || p.Ordinal != want {
					t.Fatalf("problem %s (kind %s, event %s, ordinal %d); want kind %s, event %s, ordinal %d",
						p, p.Kind, p.EventID, p.Ordinal, tc.kind, id, want)
				}
				if r.Verified != want-1 {
					t.Fatalf("verified %d events before the problem, want %d", r.Verified, want-1)
				}
				t.Logf("%s", p)
			})
		}
	}
}

// TestCheckpointsCatchARewrittenLedger: an intruder changes an event and recomputes the ledger's
// chain from there on. The ledger then agrees with the log; the sealed checkpoint does not.
func TestCheckpointsCatchARewrittenLedger(t *testing.T) {
	t.Parallel()
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			e := b.open(t)
			seed(t, e.store, 6)
			tail := catchUp(t, e)
			flipDataByte(t, e, logOf(t, e.store)[1].ID)

			var chain audit.Chain
			for i, ev := range logOf(t, e.store) {
				_, h := chain.Add(ev)
				e.exec(t, `UPDATE audit_events SET chain = ? WHERE ordinal = ?`, h[:], i+1)
			}
			r, err := audit.Verify(ctx, e.store, e.ledger)
			if err != nil {
				t.Fatal(err)
			}
			if r.OK() || r.Problem.Kind != audit.KindLedger {
				t.Fatalf("want a ledger problem, got %+v (%v)", r, r.Problem)
			}
			// The first checkpoint after the change: every 7 events.
			if r.Problem.Ordinal != min(7, tail.Ordinal) {
				t.Fatalf("problem at ordinal %d, want the first checkpoint, %d: %v", r.Problem.Ordinal, min(7, tail.Ordinal), r.Problem)
			}
		})
	}
}

// flipDataByte changes one byte of an event's stored data ("user" becomes "usex").
func flipDataByte(t *testing.T, e *env, id uuid.UUID) {
	t.Helper()
	if e.dialect == migrations.Postgres {
		e.exec(t, `UPDATE events SET data = CAST(replace(CAST(data AS text), 'user', 'usex') AS json) WHERE event_id = ?`, id.String())
	} else {
		e.exec(t, `UPDATE events SET data = replace(data, 'user', 'usex') WHERE event_id = ?`, id.String())
	}
}
