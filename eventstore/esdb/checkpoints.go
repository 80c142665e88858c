package esdb

import (
	"context"
	"encoding/json"
	"fmt"

	esdbclient "github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/uuid"
)

// checkpointSet is the one event type of checkpoint streams.
const checkpointSet = "CheckpointSet"

type checkpointBody struct {
	Position uint64 `json:"position"`
}

// Checkpoint implements eventstore.Checkpoints: the position in the last event of the
// checkpoint's stream.
func (s *Store) Checkpoint(ctx context.Context, name string) (uint64, error) {
	ctx, client, end, err := s.begin(ctx)
	if err != nil {
		return 0, err
	}
	defer end()
	if name == "" {
		return 0, fmt.Errorf("eventstore/esdb: empty checkpoint name")
	}
	last, err := lastEvent(ctx, client, checkpointStream(s.ns, name))
	if err != nil {
		return 0, s.fail(ctx, client, err, "read checkpoint %q", name)
	}
	if last == nil {
		return 0, nil
	}
	var b checkpointBody
	if err := json.Unmarshal(last.Data, &b); err != nil {
		return 0, fmt.Errorf("eventstore/esdb: checkpoint %q holds %q: %w", name, last.Data, err)
	}
	return b.Position, nil
}

// SetCheckpoint implements eventstore.Checkpoints. The stream keeps one event ($maxCount 1), so
// the server scavenges older positions.
func (s *Store) SetCheckpoint(ctx context.Context, name string, pos uint64) error {
	ctx, client, end, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer end()
	if name == "" {
		return fmt.Errorf("eventstore/esdb: empty checkpoint name")
	}
	stream := checkpointStream(s.ns, name)
	if _, done := s.capped.Load(stream); !done {
		var meta esdbclient.StreamMetadata
		meta.SetMaxCount(1)
		if _, err := client.SetStreamMetadata(ctx, stream, esdbclient.AppendToStreamOptions{}, meta); err != nil {
			return s.fail(ctx, client, err, "cap checkpoint stream %q", name)
		}
		s.capped.Store(stream, true)
	}
	id, err := uuid.NewV7()
	if err != nil {
		return fmt.Errorf("eventstore/esdb: new event id: %w", err)
	}
	data, _ := json.Marshal(checkpointBody{Position: pos}) // cannot fail
	ev := esdbclient.EventData{EventID: id, EventType: checkpointSet, ContentType: esdbclient.ContentTypeJson, Data: data}
	if _, err := client.AppendToStream(ctx, stream, esdbclient.AppendToStreamOptions{ExpectedRevision: esdbclient.Any{}}, ev); err != nil {
		return s.fail(ctx, client, err, "save checkpoint %q", name)
	}
	return nil
}
