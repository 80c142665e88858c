package audit

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// Witness POSTs every signed checkpoint to a URL outside idlog (a witness, a transparency
// service, an auditor's endpoint): body the signed note, Content-Type text/plain; any 2xx answer
// is a receipt. It implements CheckpointPublisher: a failure (no answer, another status) fails the
// publish, and the sealer hands the checkpoint over again later. A checkpoint without a signature,
// or not newer than the last one received, is skipped.
type Witness struct {
	URL string
	// Client makes the requests; nil means one with a 10-second timeout.
	Client *http.Client

	mu   sync.Mutex
	last uint64
}

var defaultWitnessClient = &http.Client{Timeout: 10 * time.Second}

// PublishCheckpoint implements CheckpointPublisher.
func (w *Witness) PublishCheckpoint(ctx context.Context, c Checkpoint) error {
	if c.Note == "" {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if c.Ordinal <= w.last {
		return nil
	}
	client := w.Client
	if client == nil {
		client = defaultWitnessClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader([]byte(c.Note)))
	if err != nil {
		return fmt.Errorf("audit: witness: %w", err)
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	res, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("audit: witness: %w", err)
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	if res.StatusCode/100 != 2 {
		return fmt.Errorf("audit: witness answered %s to the checkpoint of size %d", res.Status, c.Ordinal)
	}
	w.last = c.Ordinal
	return nil
}
