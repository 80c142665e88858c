package eventbus

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/idlog/idlog/eventstore"
)

// userErasedType is the stored name of domain.UserErased: the user's personal data was erased.
const userErasedType = "UserErased"

// purgeErased removes from IDLOG_EVENTS every message of the erased user but the UserErased one
// just published (e): the messages published before the erasure carry their personal data in
// plain, and the stream must not keep it. It waits until JetStream has stored every publish so
// far, so the purge cannot miss one in flight, then purges the subjects idlog.events.*.<uid>
// keeping the last (UserErased itself, still the stream's last message, so the chain of expected
// last message ids goes on). An event republished later (a relay that starts over) is read from
// the store after the erasure, so it carries "[erased]".
func (st *relayStep) purgeErased(ctx, acks context.Context, e eventstore.Event) error {
	if err := st.settle(acks, true); err != nil {
		return err
	}
	stream, err := st.js.Stream(ctx, EventsStream)
	if err != nil {
		return fmt.Errorf("eventbus: purge the erased user's messages: %w", err)
	}
	filter := eventsPrefix + "*." + SubjectUID(e.StreamID)
	if err := stream.Purge(ctx, jetstream.WithPurgeSubject(filter), jetstream.WithPurgeKeep(1)); err != nil {
		return fmt.Errorf("eventbus: purge %s: %w", filter, err)
	}
	st.r.log.Info("purged an erased user's messages", "subjects", filter, "position", e.GlobalPosition)
	return nil
}
