package eventbus

import (
	"context"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// streamHandle is a JetStream handle for publishing to one stream that it creates or updates on
// first use and again after each reconnect or failed publish. Safe for concurrent use.
type streamHandle struct {
	client *Client
	config jetstream.StreamConfig
	// prepare, if set, runs before the stream is created or updated (a storage move).
	prepare func(context.Context, jetstream.JetStream, jetstream.StreamConfig) error

	mu     sync.Mutex
	js     jetstream.JetStream
	jsConn *nats.Conn
	ready  bool // the stream exists as configured
}

// jetStream returns the JetStream handle, making sure the stream exists first.
func (h *streamHandle) jetStream(ctx context.Context) (jetstream.JetStream, error) {
	nc, err := h.client.connUp(ctx)
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.js == nil || h.jsConn != nc {
		if h.js, err = jetstream.New(nc); err != nil {
			return nil, fmt.Errorf("eventbus: %w", err)
		}
		h.jsConn, h.ready = nc, false
	}
	if !h.ready {
		if h.prepare != nil {
			if err := h.prepare(ctx, h.js, h.config); err != nil {
				return nil, err
			}
		}
		if _, err := ensureStream(ctx, h.js, h.config); err != nil {
			return nil, err
		}
		h.ready = true
	}
	return h.js, nil
}

// recheck makes the next use check the stream again: it may have been deleted.
func (h *streamHandle) recheck() {
	h.mu.Lock()
	h.ready = false
	h.mu.Unlock()
}
