package eventbus

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/idlog/idlog/audit"
)

// The audit checkpoints: a copy of every sealed chain head outside the database, so tampering
// with both the log and its ledger still shows against what subscribers kept.
const (
	AuditStream  = "IDLOG_AUDIT"
	AuditSubject = "idlog.audit.checkpoints"
)

// AuditPublisher publishes the audit sealer's checkpoints to AuditStream (file storage, kept
// without limit, duplicates dropped by ordinal). It implements audit.CheckpointPublisher.
type AuditPublisher struct {
	stream *streamHandle
}

var _ audit.CheckpointPublisher = (*AuditPublisher)(nil)

// NewAuditPublisher returns a publisher on client. It does not touch NATS until the first publish.
func NewAuditPublisher(client *Client) (*AuditPublisher, error) {
	if client == nil {
		return nil, fmt.Errorf("%w: Client is required", ErrInvalidOptions)
	}
	return &AuditPublisher{stream: &streamHandle{client: client, config: jetstream.StreamConfig{
		Name:        AuditStream,
		Description: "idlog's sealed audit checkpoints: ordinal, position and chain head of the event log",
		Subjects:    []string{AuditSubject},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		MaxAge:      0, // kept for good: an auditor compares the oldest too
		MaxBytes:    -1,
		MaxMsgs:     -1,
		Duplicates:  2 * time.Minute,
	}}}, nil
}

// PublishCheckpoint stores c in AuditStream and returns once JetStream acknowledged it. A
// checkpoint published twice (the sealer hands over again what failed) is kept once.
func (p *AuditPublisher) PublishCheckpoint(ctx context.Context, c audit.Checkpoint) error {
	js, err := p.stream.jetStream(ctx)
	if err != nil {
		return err
	}
	body, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("eventbus: encode audit checkpoint: %w", err)
	}
	// Signed as the events are: a checkpoint is only worth comparing if it is idlog's.
	body = p.stream.client.opts.Signer.appendSignature(body, 0)
	msg := &nats.Msg{
		Subject: AuditSubject,
		Data:    body,
		Header:  nats.Header{headerMsgID: {fmt.Sprintf("audit-checkpoint-%d", c.Ordinal)}, headerExpectedStream: {AuditStream}},
	}
	if _, err := js.PublishMsg(ctx, msg); err != nil {
		p.stream.recheck()
		return fmt.Errorf("eventbus: publish audit checkpoint %d: %w", c.Ordinal, err)
	}
	return nil
}
