package eventbus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ReadAuditCheckpoints reads every message AuditStream holds, oldest first, and returns the
// signed note (audit.TreeHead) of each checkpoint that carries one: what `idlog audit verify
// -checkpoint nats` checks the database against. It trusts nothing of the messages but the
// notes, whose signature by the audit key the caller checks (audit.OpenCheckpoint). A message
// that is no checkpoint is an error: the stream is idlog's alone.
func ReadAuditCheckpoints(ctx context.Context, nc *nats.Conn) ([][]byte, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("eventbus: %w", err)
	}
	stream, err := js.Stream(ctx, AuditStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("eventbus: stream %s does not exist yet: idlog serve creates it when it first publishes a checkpoint: %w", AuditStream, err)
	}
	if err != nil {
		return nil, fmt.Errorf("eventbus: stream %s: %w", AuditStream, err)
	}
	last := stream.CachedInfo().State.LastSeq
	var notes [][]byte
	if last == 0 {
		return notes, nil
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		return nil, fmt.Errorf("eventbus: read %s: %w", AuditStream, err)
	}
	for {
		m, err := cons.Next(jetstream.FetchContext(ctx))
		if err != nil {
			return nil, fmt.Errorf("eventbus: read %s: %w", AuditStream, err)
		}
		meta, err := m.Metadata()
		if err != nil {
			return nil, fmt.Errorf("eventbus: read %s: %w", AuditStream, err)
		}
		var c struct {
			Note *string `json:"note"`
		}
		if err := json.Unmarshal(m.Data(), &c); err != nil || c.Note == nil {
			return nil, fmt.Errorf("eventbus: message %d of %s is no audit checkpoint", meta.Sequence.Stream, AuditStream)
		}
		if *c.Note != "" { // checkpoints sealed without an audit key carry no note
			notes = append(notes, []byte(*c.Note))
		}
		if meta.Sequence.Stream >= last {
			return notes, nil
		}
	}
}
