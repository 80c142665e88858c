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

// TestReplicasSeeAppendsNobodyNotified: an append whose notification never comes (its process
// does not notify, or the notification was lost) still reaches every subscriber of a store with
// Replicas, which reads the end of the log once per poll interval for all of them.
func TestReplicasSeeAppendsNobodyNotified(t *testing.T) {
	t.Parallel()
	if os.Getenv("IDLOG_TEST_DATABASE_URL") == "" {
		t.Skip("set IDLOG_TEST_DATABASE_URL")
	}
	dsn := eventstoretest.PostgresSchema(t)
	silent := open(t, postgres.Options{DSN: dsn})
	defer silent.Close()
	b := open(t, postgres.Options{DSN: dsn, Replicas: true, PollInterval: 200 * time.Millisecond})
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	const subscribers = 3
	got := make(chan eventstore.Event, subscribers)
	for range subscribers {
		go func() {
			for e, err := range b.Subscribe(ctx, 0, eventstore.Filter{}) {
				if err == nil {
					got <- e
				}
				return
			}
		}()
	}
	res, err := silent.Append(ctx, eventstore.Append{Stream: "user-silent", Expected: eventstore.NoStream,
		Events: []eventstore.NewEvent{{Type: "Silent", SchemaVersion: 1, Data: []byte(`{}`)}}})
	if err != nil {
		t.Fatal(err)
	}
	for range subscribers {
		select {
		case e := <-got:
			if e.GlobalPosition != res.LastPosition {
				t.Fatalf("subscriber got position %d, want %d", e.GlobalPosition, res.LastPosition)
			}
		case <-ctx.Done():
			t.Fatal("a subscriber did not see the append nobody notified")
		}
	}
}
