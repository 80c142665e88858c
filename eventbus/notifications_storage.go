package eventbus

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Moving IDLOG_NOTIFICATIONS from memory to file storage.
//
// idlog before this file kept IDLOG_NOTIFICATIONS in memory, so a NATS restart lost every unread
// code. JetStream cannot change a stream's storage, and two streams cannot share subjects, so a
// stream of the old kind is replaced under the same name (mailers keep their configuration),
// without losing what it holds, even if idlog stops half-way:
//
//  1. seal the memory stream: nothing more lands in it (a publish fails, and the courier keeps
//     the message in its outbox and tries again);
//  2. copy its messages into a file-backed holding stream, notificationsHolding, each with its
//     subject and its original Nats-Msg-Id;
//  3. delete the memory stream, create the file-backed one;
//  4. copy the held messages back, in order, with their original Nats-Msg-Id, and delete the
//     holding stream.
//
// A start that finds the holding stream resumes at step 3 or 4. A copy done twice gives a
// duplicate only outside JetStream's duplicate window; its CloudEvent id is the same, so a
// mailer that dedups on it sends once. Durable consumers of the memory stream go with it: a
// mailer must create its consumer again (it then reads the moved messages as new). The moved
// messages' age starts again at the move, so they live up to MaxAge more.

const (
	notificationsHolding        = "IDLOG_NOTIFICATIONS_MOVING"
	notificationsHoldingSubject = "idlog.notificationsmoving."
)

// moveNotificationsToFile replaces a memory-backed stream named want.Name by the file-backed
// stream want, keeping its messages. It does nothing when there is no such stream, or it is
// already file-backed, and no holding stream is left from an interrupted move.
func moveNotificationsToFile(ctx context.Context, js jetstream.JetStream, want jetstream.StreamConfig) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	old, err := js.Stream(ctx, want.Name)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		old = nil
	case err != nil:
		return fmt.Errorf("eventbus: look up stream %s: %w", want.Name, err)
	}
	if old != nil && old.CachedInfo().Config.Storage == jetstream.MemoryStorage {
		holding, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name:        notificationsHolding,
			Description: "idlog moves " + want.Name + " to file storage through this stream; it deletes it after",
			Subjects:    []string{notificationsHoldingSubject + ">"},
			Storage:     jetstream.FileStorage,
			Retention:   jetstream.LimitsPolicy,
			Duplicates:  want.Duplicates,
		})
		if err != nil {
			return fmt.Errorf("eventbus: create stream %s: %w", notificationsHolding, err)
		}
		cfg := old.CachedInfo().Config
		if !cfg.Sealed {
			cfg.Sealed = true
			if old, err = js.UpdateStream(ctx, cfg); err != nil {
				return fmt.Errorf("eventbus: seal stream %s: %w", want.Name, err)
			}
		}
		if err := copyStream(ctx, js, old, holding.CachedInfo().Config.Name, func(subject string) string {
			return notificationsHoldingSubject + strings.TrimPrefix(subject, notificationsPrefix)
		}); err != nil {
			return err
		}
		if err := js.DeleteStream(ctx, want.Name); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("eventbus: delete the memory stream %s: %w", want.Name, err)
		}
		old = nil
	}
	holding, err := js.Stream(ctx, notificationsHolding)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("eventbus: look up stream %s: %w", notificationsHolding, err)
	}
	if old == nil {
		if _, err := js.CreateStream(ctx, want); err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return classifyStreamError(want, err)
		}
	}
	if err := copyStream(ctx, js, holding, want.Name, func(subject string) string {
		return notificationsPrefix + strings.TrimPrefix(subject, notificationsHoldingSubject)
	}); err != nil {
		return err
	}
	if err := js.DeleteStream(ctx, notificationsHolding); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("eventbus: delete stream %s: %w", notificationsHolding, err)
	}
	return nil
}

// copyStream publishes every message of from to the stream named to, in order, with the
// subject that rename gives and the original Nats-Msg-Id.
func copyStream(ctx context.Context, js jetstream.JetStream, from jetstream.Stream, to string, rename func(string) string) error {
	info, err := from.Info(ctx)
	if err != nil {
		return fmt.Errorf("eventbus: stream %s: %w", from.CachedInfo().Config.Name, err)
	}
	if info.State.Msgs == 0 {
		return nil
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := from.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // expired or never there
		}
		if err != nil {
			return fmt.Errorf("eventbus: read message %d of %s: %w", seq, info.Config.Name, err)
		}
		msg := &nats.Msg{Subject: rename(m.Subject), Data: m.Data, Header: nats.Header{headerExpectedStream: {to}}}
		if id := m.Header.Get(headerMsgID); id != "" {
			msg.Header.Set(headerMsgID, id)
		}
		if _, err := js.PublishMsg(ctx, msg); err != nil {
			return fmt.Errorf("eventbus: copy message %d of %s to %s: %w", seq, info.Config.Name, to, err)
		}
	}
	return nil
}
