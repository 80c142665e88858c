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

// ErrInvalidConsumer: Consume was given a filter or a durable name NATS cannot use, or a durable
// name that already follows other events.
var ErrInvalidConsumer = errors.New("eventbus: invalid consumer")

// ConsumeOptions say which events Consume delivers, from where.
type ConsumeOptions struct {
	// Type keeps the events of this type only (UserRegistered); empty keeps all.
	Type string
	// User keeps the events of this user only (their uid); empty keeps all.
	User string
	// FromStart starts with the oldest event the stream holds; otherwise with the next one
	// published. A durable consumer that exists already resumes where it stopped instead.
	FromStart bool
	// Durable names a consumer that the server keeps: a later Consume with the same name resumes
	// after the last event handled. Empty means an ephemeral consumer.
	Durable string
	// Max stops after this many events (0: until ctx ends).
	Max int
	// Keys, when set, are the keys events must be signed with (VerifyEvent): a message that
	// fails is not handed to handle but to Rejected, and counts as consumed. Set it unless the
	// caller verifies by itself.
	Keys EventKeys
	// Rejected receives the messages that fail verification with the reason. Nil drops them.
	Rejected func(Message, error)

	verifier *EventVerifier // Keys', made by Consume (nil without Keys): it checks a batch's signature once
}

// Message is one event as Consume delivers it.
type Message struct {
	Subject  string
	Sequence uint64 // in IDLOG_EVENTS
	Data     []byte // the CloudEvent, JSON on one line
}

// FilterSubject is the subject filter of o: idlog.events.<type or *>.<uid or *>.
func (o ConsumeOptions) FilterSubject() string {
	typ, user := "*", "*"
	if o.Type != "" {
		typ = o.Type
	}
	if o.User != "" {
		user = o.User
	}
	return eventsPrefix + typ + "." + user
}

func (o ConsumeOptions) validate() error {
	for _, f := range []struct{ name, v string }{{"type", o.Type}, {"user", o.User}, {"durable name", o.Durable}} {
		if f.v != "" && !isToken(f.v) {
			return fmt.Errorf("%w: %s %q may hold only letters, digits, '-' and '_'", ErrInvalidConsumer, f.name, f.v)
		}
	}
	if o.Max < 0 {
		return fmt.Errorf("%w: Max (%d) cannot be negative", ErrInvalidConsumer, o.Max)
	}
	return nil
}

// Consume delivers the events of IDLOG_EVENTS that o selects to handle, in stream order, until ctx
// ends (it then returns nil), Max events were handled, or handle fails (its error is returned and
// that event stays unhandled). With a durable consumer, an event counts as handled once the server
// confirmed handle's success, so a later run resumes with the next one.
func Consume(ctx context.Context, nc *nats.Conn, o ConsumeOptions, handle func(Message) error) error {
	if err := o.validate(); err != nil {
		return err
	}
	if o.Keys != nil {
		o.verifier = NewEventVerifier(o.Keys)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("eventbus: %w", err)
	}
	policy := jetstream.DeliverNewPolicy
	if o.FromStart {
		policy = jetstream.DeliverAllPolicy
	}
	var cons jetstream.Consumer
	if o.Durable == "" {
		cons, err = js.OrderedConsumer(ctx, EventsStream, jetstream.OrderedConsumerConfig{
			FilterSubjects: []string{o.FilterSubject()},
			DeliverPolicy:  policy,
		})
	} else {
		cons, err = durableConsumer(ctx, js, o, policy)
	}
	if err != nil {
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("eventbus: stream %s does not exist yet: idlog serve creates it when its relay first reaches NATS: %w", EventsStream, err)
		}
		return err
	}
	if o.Durable != "" {
		return consumeDurable(ctx, cons, o, handle)
	}
	msgs, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("eventbus: consume %s: %w", EventsStream, err)
	}
	defer msgs.Stop()
	for n := 0; o.Max == 0 || n < o.Max; {
		m, err := msgs.Next(jetstream.NextContext(ctx))
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("eventbus: consume %s: %w", EventsStream, err)
		}
		if !o.verified(message(m)) {
			continue
		}
		if err := handle(message(m)); err != nil {
			return err
		}
		n++
	}
	return nil
}

// verified reports whether m may be handed to the handler: no keys to check, or signed with one.
func (o ConsumeOptions) verified(m Message) bool {
	if o.verifier == nil {
		return true
	}
	if _, err := o.verifier.Verify(m.Subject, m.Data); err != nil {
		if o.Rejected != nil {
			o.Rejected(m, err)
		}
		return false
	}
	return true
}

// consumeDurable pulls one event at a time and acknowledges each, confirmed by the server, before
// the next: a run that stops leaves no event delivered but unacknowledged, which the consumer
// would otherwise hold back for AckWait. Each pull lasts at most a second, so one outlives a stop
// by no more than that.
func consumeDurable(ctx context.Context, cons jetstream.Consumer, o ConsumeOptions, handle func(Message) error) error {
	for n := 0; o.Max == 0 || n < o.Max; {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		m, err := cons.Next(jetstream.FetchContext(pctx))
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) {
			continue
		}
		if err != nil {
			return fmt.Errorf("eventbus: consume %s as %s: %w", EventsStream, o.Durable, err)
		}
		ok := o.verified(message(m))
		if ok {
			if err := handle(message(m)); err != nil {
				return err
			}
		}
		// A rejected message is acknowledged too: it would come back for ever otherwise.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		err = m.DoubleAck(actx)
		cancel()
		if err != nil {
			return fmt.Errorf("eventbus: acknowledge %s to consumer %s: %w", m.Subject(), o.Durable, err)
		}
		if ok {
			n++
		}
	}
	return nil
}

func message(m jetstream.Msg) Message {
	var seq uint64
	if meta, err := m.Metadata(); err == nil {
		seq = meta.Sequence.Stream
	}
	return Message{Subject: m.Subject(), Sequence: seq, Data: m.Data()}
}

// durableConsumer finds or creates the durable consumer. It has one event at a time in flight,
// so events are handled in stream order even after a redelivery.
func durableConsumer(ctx context.Context, js jetstream.JetStream, o ConsumeOptions, policy jetstream.DeliverPolicy) (jetstream.Consumer, error) {
	filter := o.FilterSubject()
	cons, err := js.Consumer(ctx, EventsStream, o.Durable)
	if err == nil {
		have := cons.CachedInfo().Config
		if have.FilterSubject != filter || len(have.FilterSubjects) > 0 {
			got := have.FilterSubject
			if len(have.FilterSubjects) > 0 {
				got = strings.Join(have.FilterSubjects, ", ")
			}
			return nil, fmt.Errorf("%w: the durable consumer %s follows %s, not %s: choose another name", ErrInvalidConsumer, o.Durable, got, filter)
		}
		return cons, nil
	}
	if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, fmt.Errorf("eventbus: look up consumer %s: %w", o.Durable, err)
	}
	cons, err = js.CreateConsumer(ctx, EventsStream, jetstream.ConsumerConfig{
		Durable:       o.Durable,
		Description:   "idlog events tail",
		FilterSubject: filter,
		DeliverPolicy: policy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       10 * time.Second,
		MaxAckPending: 1,
	})
	if err != nil {
		return nil, fmt.Errorf("eventbus: create consumer %s: %w", o.Durable, err)
	}
	return cons, nil
}
