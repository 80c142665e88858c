package eventbus

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ErrStreamConfig: a stream idlog publishes to exists with a configuration idlog cannot adopt
// (another storage type or retention policy, subjects another stream already takes, ...). See
// StreamConfigError.
var ErrStreamConfig = errors.New("eventbus: stream configuration conflict")

// StreamConfigError says which stream conflicts, how, and what to do about it.
type StreamConfigError struct {
	Stream string
	Reason string // what differs, in words
	Err    error  // the server's answer, if it gave one
}

func (e *StreamConfigError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("eventbus: stream %s: %s: %v", e.Stream, e.Reason, e.Err)
	}
	return fmt.Sprintf("eventbus: stream %s: %s", e.Stream, e.Reason)
}

// Unwrap makes errors.Is(err, ErrStreamConfig) true and keeps the server's error.
func (e *StreamConfigError) Unwrap() []error { return []error{ErrStreamConfig, e.Err} }

// appendOnly are the streams that keep a record: the events and the audit checkpoints. Their
// messages can be neither deleted nor purged, by anyone; they leave only by MaxAge or MaxBytes.
var appendOnly = map[string]bool{EventsStream: true, AuditStream: true}

// ensureStream creates the stream or brings an existing one to want. Settings idlog does not
// decide (replicas, placement, ...) are kept as an operator set them. Settings NATS cannot
// change in place are reported, not forced.
func ensureStream(ctx context.Context, js jetstream.JetStream, want jetstream.StreamConfig) (jetstream.Stream, error) {
	if appendOnly[want.Name] {
		// NATS refuses to lift these once set: an intruder with idlog's own credentials cannot
		// erase what was published either.
		want.DenyDelete, want.DenyPurge, want.AllowRollup = true, true, false
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, want.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		s, err = js.CreateStream(ctx, want)
		if err != nil {
			return nil, classifyStreamError(want, err)
		}
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("eventbus: look up stream %s: %w", want.Name, err)
	}
	have := s.CachedInfo().Config
	if have.Storage != want.Storage {
		return nil, &StreamConfigError{Stream: want.Name, Reason: fmt.Sprintf(
			"it exists with %s storage, idlog needs %s, and NATS cannot change a stream's storage: delete or rename the existing stream", have.Storage, want.Storage)}
	}
	if have.Retention != want.Retention {
		return nil, &StreamConfigError{Stream: want.Name, Reason: fmt.Sprintf(
			"it exists with the %s retention policy, idlog needs %s, and NATS cannot change it: delete or rename the existing stream", have.Retention, want.Retention)}
	}
	cfg := have
	cfg.Subjects = want.Subjects
	cfg.Description = want.Description
	cfg.MaxAge = want.MaxAge
	cfg.MaxBytes = want.MaxBytes
	cfg.MaxMsgs = want.MaxMsgs
	cfg.Discard = want.Discard
	cfg.Duplicates = want.Duplicates
	// Streams made before idlog denied them get the flags now; NATS allows setting, not unsetting.
	cfg.DenyDelete = cfg.DenyDelete || want.DenyDelete
	cfg.DenyPurge = cfg.DenyPurge || want.DenyPurge
	cfg.AllowRollup = cfg.AllowRollup && !want.DenyPurge
	s, err = js.UpdateStream(ctx, cfg)
	if err != nil {
		return nil, classifyStreamError(want, err)
	}
	return s, nil
}

// classifyStreamError turns the server's refusals of a stream configuration into
// StreamConfigErrors, and leaves other failures (timeouts, lost connections) alone.
func classifyStreamError(want jetstream.StreamConfig, err error) error {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) || apiErr.Code >= 500 {
		return fmt.Errorf("eventbus: create or update stream %s: %w", want.Name, err)
	}
	reason := "NATS refused its configuration"
	if strings.Contains(apiErr.Description, "overlap") {
		reason = fmt.Sprintf("its subjects %s overlap those of another stream on this server: remove them from that stream", strings.Join(want.Subjects, ", "))
	}
	return &StreamConfigError{Stream: want.Name, Reason: reason, Err: err}
}

// maxBytes is JetStream's spelling of a byte limit: -1 for none.
func maxBytes(n int64) int64 {
	if n <= 0 {
		return -1
	}
	return n
}
