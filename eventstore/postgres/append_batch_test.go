package postgres_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/eventstore/eventstoretest"
	"github.com/idlog/idlog/eventstore/postgres"
)

// A batch of appends to new streams is one transaction: its events get increasing positions in
// the order given and are read back like appended ones; a batch with one bad append (a key taken)
// writes nothing. KeyOwners answers for many keys at once.
func TestAppendBatch(t *testing.T) {
	t.Parallel()
	s := open(t, postgres.Options{DSN: eventstoretest.PostgresSchema(t)})
	defer s.Close()
	ctx := t.Context()
	ev := func(typ string) eventstore.NewEvent {
		return eventstore.NewEvent{Type: typ, SchemaVersion: 1, Data: json.RawMessage(`{}`)}
	}
	res, err := s.AppendBatch(ctx, []eventstore.Append{
		{Stream: "user-a", Expected: eventstore.NoStream, Events: []eventstore.NewEvent{ev("A1"), ev("A2")}, Claim: []string{"email:a@example.com"}},
		{Stream: "user-b", Expected: eventstore.NoStream, Events: []eventstore.NewEvent{ev("B1")}, Claim: []string{"email:b@example.com"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || res[0].LastVersion != 2 || res[1].FirstVersion != 1 || !(res[0].FirstPosition < res[0].LastPosition && res[0].LastPosition < res[1].FirstPosition) {
		t.Fatalf("results %+v: want versions 1-2 and 1, positions increasing", res)
	}
	var types []string
	for e, err := range s.ReadAll(ctx, 0, eventstore.Filter{}) {
		if err != nil {
			t.Fatal(err)
		}
		types = append(types, e.Type)
	}
	if len(types) != 3 || types[0] != "A1" || types[1] != "A2" || types[2] != "B1" {
		t.Errorf("log %v, want A1 A2 B1", types)
	}

	// b's email again: the batch fails with the key, and c is not written either.
	_, err = s.AppendBatch(ctx, []eventstore.Append{
		{Stream: "user-c", Expected: eventstore.NoStream, Events: []eventstore.NewEvent{ev("C1")}, Claim: []string{"email:c@example.com"}},
		{Stream: "user-d", Expected: eventstore.NoStream, Events: []eventstore.NewEvent{ev("D1")}, Claim: []string{"email:b@example.com"}},
	})
	var taken *eventstore.KeyTakenError
	if !errors.As(err, &taken) || taken.Key != "email:b@example.com" {
		t.Fatalf("batch with a taken key: %v, want KeyTakenError", err)
	}
	for range s.ReadStream(ctx, "user-c", 0) {
		t.Fatal("user-c was written by a failed batch")
	}
	owners, err := s.KeyOwners(ctx, []string{"email:a@example.com", "email:b@example.com", "email:c@example.com"})
	if err != nil || len(owners) != 2 || owners["email:a@example.com"] != "user-a" || owners["email:b@example.com"] != "user-b" {
		t.Errorf("KeyOwners = %v, %v", owners, err)
	}
}
