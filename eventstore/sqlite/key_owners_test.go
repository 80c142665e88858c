package sqlite_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/eventstore/sqlite"
)

// KeyOwners answers KeyOwner for many keys at once, past one query's worth of parameters.
func TestKeyOwners(t *testing.T) {
	t.Parallel()
	s, err := sqlite.Open(t.Context(), sqlite.Options{Path: filepath.Join(t.TempDir(), "idlog.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var keys []string
	for i := range 1200 {
		k := fmt.Sprintf("email:u%d@example.com", i)
		keys = append(keys, k)
		if i%2 == 1 {
			continue // half the keys are free
		}
		if _, err := s.Append(t.Context(), eventstore.Append{Stream: fmt.Sprintf("user-%d", i), Expected: eventstore.NoStream,
			Events: []eventstore.NewEvent{{Type: "T", SchemaVersion: 1, Data: json.RawMessage(`{}`)}}, Claim: []string{k}}); err != nil {
			t.Fatal(err)
		}
	}
	owners, err := s.KeyOwners(t.Context(), keys)
	if err != nil || len(owners) != 600 || owners["email:u1198@example.com"] != "user-1198" || owners["email:u1@example.com"] != "" {
		t.Errorf("KeyOwners: %d owners, %v", len(owners), err)
	}
}

// A batch of appends is all or nothing: one taken key, and none of its streams exist.
func TestAppendBatch(t *testing.T) {
	t.Parallel()
	s, err := sqlite.Open(t.Context(), sqlite.Options{Path: filepath.Join(t.TempDir(), "idlog.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ev := eventstore.NewEvent{Type: "T", SchemaVersion: 1, Data: json.RawMessage(`{}`)}
	res, err := s.AppendBatch(t.Context(), []eventstore.Append{
		{Stream: "user-a", Expected: eventstore.NoStream, Events: []eventstore.NewEvent{ev, ev}, Claim: []string{"email:a@example.com"}},
		{Stream: "user-b", Expected: eventstore.NoStream, Events: []eventstore.NewEvent{ev}, Claim: []string{"email:b@example.com"}},
	})
	if err != nil || len(res) != 2 || res[0].LastVersion != 2 || res[0].LastPosition >= res[1].FirstPosition {
		t.Fatalf("AppendBatch: %+v, %v", res, err)
	}
	_, err = s.AppendBatch(t.Context(), []eventstore.Append{
		{Stream: "user-c", Expected: eventstore.NoStream, Events: []eventstore.NewEvent{ev}, Claim: []string{"email:c@example.com"}},
		{Stream: "user-d", Expected: eventstore.NoStream, Events: []eventstore.NewEvent{ev}, Claim: []string{"email:a@example.com"}},
	})
	if !errors.Is(err, eventstore.ErrKeyTaken) {
		t.Fatalf("batch with a taken key: %v", err)
	}
	if _, err := s.KeyOwner(t.Context(), "email:c@example.com"); !errors.Is(err, eventstore.ErrKeyNotClaimed) {
		t.Errorf("user-c's key after the failed batch: %v, want not claimed", err)
	}
}
