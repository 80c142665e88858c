package eventbus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ErrInvalidNotification: Notify was given a kind that is no subject token, or no recipient.
var ErrInvalidNotification = errors.New("eventbus: invalid notification")

// DefaultNotificationMaxAge is how long an unread notification waits for its sender.
const DefaultNotificationMaxAge = time.Hour

// maxKindLen bounds a notification kind, which is one subject token.
const maxKindLen = 64

// NotifierOptions configure NewNotifier.
type NotifierOptions struct {
	// Client is the NATS connection. Required.
	Client *Client
	// MaxAge is how long IDLOG_NOTIFICATIONS keeps a notification, read or not. Default
	// DefaultNotificationMaxAge.
	MaxAge time.Duration
	// Source is the CloudEvents source of the messages. Default DefaultSource.
	Source string
	// Timeout bounds one Notify when its context has no earlier deadline. Default 5s.
	Timeout time.Duration
}

// Notifier publishes what a mailer or an SMS sender needs to reach a user, one-shot secrets
// included (email codes, reset tokens), on idlog.notifications.<kind> to IDLOG_NOTIFICATIONS: a
// stream kept on file for MaxAge (a NATS restart loses no unread code), apart from the event log,
// which never holds such secrets. A memory-backed IDLOG_NOTIFICATIONS that an older idlog made is
// moved to file storage at first use, its messages kept (see moveNotificationsToFile).
// Safe for concurrent use.
type Notifier struct {
	opts   NotifierOptions
	stream *streamHandle
}

// NewNotifier checks o and returns a notifier. It does not touch NATS until the first Notify.
func NewNotifier(o NotifierOptions) (*Notifier, error) {
	switch {
	case o.Client == nil:
		return nil, fmt.Errorf("%w: Client is required", ErrInvalidOptions)
	case o.MaxAge < 0 || o.Timeout < 0:
		return nil, fmt.Errorf("%w: MaxAge (%v) and Timeout (%v) cannot be negative", ErrInvalidOptions, o.MaxAge, o.Timeout)
	}
	if o.MaxAge == 0 {
		o.MaxAge = DefaultNotificationMaxAge
	}
	if o.Source == "" {
		o.Source = DefaultSource
	}
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Second
	}
	return &Notifier{opts: o, stream: &streamHandle{client: o.Client, prepare: moveNotificationsToFile, config: jetstream.StreamConfig{
		Name:        NotificationsStream,
		Description: "idlog's notifications for mailers and SMS senders; one-shot secrets, kept briefly",
		Subjects:    []string{NotificationsSubjects},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Discard:     jetstream.DiscardOld,
		MaxAge:      o.MaxAge,
		MaxBytes:    -1,
		MaxMsgs:     -1,
		Duplicates:  min(2*time.Minute, o.MaxAge),
	}}}, nil
}

// Notification is the data of a notification message.
type Notification struct {
	To      string            `json:"to"`
	Payload map[string]string `json:"payload"`
}

// Notify publishes a notification of this kind (a subject token such as email_confirmation) to
// the recipient to (an email address or phone number), and returns once JetStream stored it. The
// body is a CloudEvent whose type is kind and whose data is a Notification. NATS being
// unreachable gives an error matching ErrNotConnected at once.
func (n *Notifier) Notify(ctx context.Context, kind, to string, payload map[string]string) error {
	if !isToken(kind) || len(kind) > maxKindLen {
		return fmt.Errorf("%w: kind %q must be 1 to %d letters, digits, '-' or '_'", ErrInvalidNotification, kind, maxKindLen)
	}
	if to == "" {
		return fmt.Errorf("%w: no recipient for %s", ErrInvalidNotification, kind)
	}
	if payload == nil {
		payload = map[string]string{}
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, n.opts.Timeout)
		defer cancel()
	}
	js, err := n.stream.jetStream(ctx)
	if err != nil {
		return err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return fmt.Errorf("eventbus: notification id: %w", err)
	}
	data, err := json.Marshal(Notification{To: to, Payload: payload})
	if err != nil {
		return fmt.Errorf("eventbus: encode notification: %w", err)
	}
	body, err := json.Marshal(struct {
		SpecVersion     string          `json:"specversion"`
		ID              string          `json:"id"`
		Source          string          `json:"source"`
		Type            string          `json:"type"`
		Time            time.Time       `json:"time"`
		DataContentType string          `json:"datacontenttype"`
		Data            json.RawMessage `json:"data"`
	}{"1.0", id.String(), n.opts.Source, kind, time.Now().UTC(), "application/json", data})
	if err != nil {
		return fmt.Errorf("eventbus: encode notification: %w", err)
	}
	// Signed as the events are: a mailer can tell idlog's notifications from forged ones.
	body = n.opts.Client.opts.Signer.appendSignature(body, 0)
	msg := &nats.Msg{
		Subject: notificationsPrefix + kind,
		Data:    body,
		Header:  nats.Header{headerMsgID: {id.String()}, headerExpectedStream: {NotificationsStream}},
	}
	if _, err := js.PublishMsg(ctx, msg); err != nil {
		n.stream.recheck()
		// Never the payload: it holds the secret.
		return fmt.Errorf("eventbus: publish %s notification: %w", kind, err)
	}
	return nil
}

// Check is a readiness check: nil while NATS answers.
func (n *Notifier) Check(ctx context.Context) error { return n.opts.Client.Check(ctx) }
