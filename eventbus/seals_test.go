package eventbus_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/idlog/idlog/audit"
	"github.com/idlog/idlog/eventbus"
	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/eventstore/sqlite"
	"github.com/idlog/idlog/migrations"
	"github.com/idlog/idlog/projections"
)

// The sealer's checkpoints reach IDLOG_AUDIT, once each, with the chain head the ledger holds.
func TestAuditCheckpointsArePublishedOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "idlog.db")
	store, err := sqlite.Open(ctx, sqlite.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	db, err := projections.OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ledger, err := audit.NewLedger(db, migrations.SQLite)
	if err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, t.TempDir(), 0)
	client := newClient(t, srv.ClientURL(), nil)
	pub, err := eventbus.NewAuditPublisher(client)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 25 {
		if _, err := store.Append(ctx, eventstore.Append{Stream: "user-ID000000000" + string(rune('A'+i%6)), Expected: eventstore.Any,
			Events: []eventstore.NewEvent{{Type: "UserDataUpdated", SchemaVersion: 1, Data: json.RawMessage(`{"n":1}`)}}}); err != nil {
			t.Fatal(err)
		}
	}
	skey, vkey, err := audit.NewAuditKey("idlog-audit")
	if err != nil {
		t.Fatal(err)
	}
	signer, _, err := audit.ParseAuditKey([]byte(skey + "\n" + vkey))
	if err != nil {
		t.Fatal(err)
	}
	sealer, err := audit.NewSealer(audit.SealerOptions{Store: store, Ledger: ledger, Publisher: pub, CheckpointEvery: 10, Signer: signer})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sealer.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	// Handing a checkpoint over twice (as after a failed publish) keeps one copy.
	var again audit.Checkpoint
	if err := json.Unmarshal(lastAuditMessage(t, client).Data, &again); err != nil {
		t.Fatal(err)
	}
	if err := pub.PublishCheckpoint(ctx, again); err != nil {
		t.Fatal(err)
	}

	nc, err := client.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	st, err := js.Stream(ctx, eventbus.AuditStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.Storage != jetstream.FileStorage || info.State.Msgs < 2 {
		t.Fatalf("IDLOG_AUDIT: storage %v with %d checkpoints, want file storage and at least 2 (25 events, one every 10)", info.Config.Storage, info.State.Msgs)
	}
	seen := map[uint64]bool{}
	var last audit.Checkpoint
	for seq := uint64(1); seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		var c audit.Checkpoint
		if err := json.Unmarshal(m.Data, &c); err != nil {
			t.Fatal(err)
		}
		if _, err := eventbus.VerifyEvent(testSigner.Keys(), "", m.Data); err != nil {
			t.Errorf("checkpoint %d: %v", c.Ordinal, err)
		}
		// The tree head signed with the audit key travels with it, for auditors who keep it.
		if h, err := audit.OpenCheckpoint([]byte(c.Note), vkey); err != nil || h.Size != c.Ordinal || h.Root != c.Root {
			t.Errorf("checkpoint %d: signed note %q opens as %+v, %v", c.Ordinal, c.Note, h, err)
		}
		if seen[c.Ordinal] {
			t.Errorf("checkpoint %d published twice", c.Ordinal)
		}
		seen[c.Ordinal] = true
		last = c
	}
	r, err := audit.Verify(ctx, store, ledger)
	if err != nil {
		t.Fatal(err)
	}
	if last.Ordinal == 0 || last.Ordinal > 25 || last != again {
		t.Errorf("last published checkpoint %+v, want the last one the sealer made (%+v), verify says %+v", last, again, r)
	}
}

func lastAuditMessage(t *testing.T, c *eventbus.Client) jetstream.RawStreamMsg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	nc, err := c.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	st, err := js.Stream(ctx, eventbus.AuditStream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.GetLastMsgForSubject(ctx, eventbus.AuditSubject)
	if err != nil {
		t.Fatal(err)
	}
	return *m
}
