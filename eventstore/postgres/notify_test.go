package postgres_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/eventstore/eventstoretest"
	"github.com/idlog/idlog/eventstore/postgres"
)

// TestReplicasWakeEachOthersSubscribers: a subscriber of one process sees an append made through
// another process's store at once, though it would poll only once an hour.
func TestReplicasWakeEachOthersSubscribers(t *testing.T) {
	t.Parallel()
	if os.Getenv("IDLOG_TEST_DATABASE_URL") == "" {
		t.Skip("set IDLOG_TEST_DATABASE_URL")
	}
	dsn := eventstoretest.PostgresSchema(t)
	a := open(t, postgres.Options{DSN: dsn, Replicas: true, PollInterval: time.Hour})
	defer a.Close()
	b := open(t, postgres.Options{DSN: dsn, Replicas: true, PollInterval: time.Hour})
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	got := make(chan eventstore.Event, 1)
	started := make(chan struct{})
	go func() {
		close(started)
		for e, err := range b.Subscribe(ctx, 0, eventstore.Filter{}) {
			if err == nil {
				got <- e
			}
			return
		}
	}()
	<-started
	// The subscriber's first read may come after the append; either way it must see it.
	time.Sleep(100 * time.Millisecond) // let the subscriber reach its wait: it then needs the notification
	res, err := a.Append(ctx, eventstore.Append{Stream: "user-notify", Expected: eventstore.NoStream,
		Events: []eventstore.NewEvent{{Type: "Notified", SchemaVersion: 1, Data: []byte(`{}`)}}})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-got:
		if e.GlobalPosition != res.LastPosition {
			t.Fatalf("subscriber got position %d, want %d", e.GlobalPosition, res.LastPosition)
		}
	case <-ctx.Done():
		t.Fatal("the other process's subscriber did not see the append")
	}
}
