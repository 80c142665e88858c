package eventbus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/idlog/idlog/audit"
)

// ReadAuditCheckpoints returns every checkpoint IDLOG_AUDIT holds, oldest first, as the sealer
// published them. The signed note of each (Checkpoint.Note) is what an auditor checks: it needs
// the audit public key, not trust in NATS. A stream that does not exist holds none.
func ReadAuditCheckpoints(ctx context.Context, nc *nats.Conn) ([]audit.Checkpoint, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("eventbus: %w", err)
	}
	stream, err := js.Stream(ctx, AuditStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("eventbus: stream %s: %w", AuditStream, err)
	}
	last := stream.CachedInfo().State.LastSeq
	if stream.CachedInfo().State.Msgs == 0 {
		return nil, nil
	}
	cons, err := js.OrderedConsumer(ctx, AuditStream, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		return nil, fmt.Errorf("eventbus: read %s: %w", AuditStream, err)
	}
	var out []audit.Checkpoint
	for {
		batch, err := cons.Fetch(256, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return nil, fmt.Errorf("eventbus: read %s: %w", AuditStream, err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			var c audit.Checkpoint
			if err := json.Unmarshal(m.Data(), &c); err != nil {
				return nil, fmt.Errorf("eventbus: a message of %s is no checkpoint: %w", AuditStream, err)
			}
			out = append(out, c)
			meta, err := m.Metadata()
			if err == nil && meta.Sequence.Stream >= last {
				return out, nil
			}
		}
		if err := batch.Error(); err != nil {
			return nil, fmt.Errorf("eventbus: read %s: %w", AuditStream, err)
		}
		if n == 0 {
			return nil, fmt.Errorf("eventbus: %s stopped before its last message %d", AuditStream, last)
		}
	}
}
