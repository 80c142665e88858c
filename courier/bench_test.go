package courier_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	mail "github.com/wneessen/go-mail"

	"github.com/idlog/idlog/courier"
	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/internal/smtptest"
)

// BenchmarkDelivery compares, in one run and against the same in-process SMTP server, the
// courier's delivery rate (read the outbox, open the sealed payload, render the templates, send
// by go-mail, delete the row under its fencing check) with go-mail's raw rate (build and send
// messages on one connection). Both report msgs/s.
func BenchmarkDelivery(b *testing.B) {
	for _, be := range backends() {
		b.Run("courier-"+be.name, func(b *testing.B) {
			e := newEnv(b, be)
			srv := smtptest.Start(b)
			c := e.courier(b, e.smtpSender(b, srv), func(o *courier.Options) { o.Batch = 500 })
			ctx := context.Background()
			// Queue b.N messages, 100 an append, outside the timing.
			for i := 0; i < b.N; i += 100 {
				var msgs []eventstore.OutboxMessage
				for j := i; j < min(i+100, b.N); j++ {
					m, err := e.outbox.Message("email_confirmation", courier.ChannelEmail, "ID0000000001",
						courier.Payload{To: fmt.Sprintf("u%d@example.com", j), Token: "ID0000000001.abcdefghijklmnop"}, time.Hour)
					if err != nil {
						b.Fatal(err)
					}
					msgs = append(msgs, m)
				}
				ev := eventstore.NewEvent{Type: "BenchMessagesCaused", SchemaVersion: 1, Data: []byte(`{}`)}
				if _, err := e.store.Append(ctx, eventstore.Append{Stream: fmt.Sprintf("bench-%d", i), Expected: eventstore.NoStream,
					Events: []eventstore.NewEvent{ev}, Outbox: msgs}); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			start := time.Now()
			drain(b, c)
			elapsed := time.Since(start)
			b.StopTimer()
			if got := len(srv.Messages()); got != b.N {
				b.Fatalf("%d delivered, want %d", got, b.N)
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
		})
	}
	b.Run("raw-go-mail", func(b *testing.B) {
		srv := smtptest.Start(b)
		client, err := mail.NewClient("127.0.0.1", mail.WithPort(portOf(b, srv)), mail.WithTLSPortPolicy(mail.NoTLS))
		if err != nil {
			b.Fatal(err)
		}
		if err := client.DialWithContext(context.Background()); err != nil {
			b.Fatal(err)
		}
		defer client.Close()
		b.ResetTimer()
		start := time.Now()
		for i := range b.N {
			m := mail.NewMsg()
			_ = m.From("idlog@example.com")
			_ = m.To(fmt.Sprintf("u%d@example.com", i))
			m.Subject("Confirm your email address")
			m.SetMessageID()
			m.SetDate()
			m.SetBodyString(mail.TypeTextPlain, "Confirm your email address with this code:\n\nID0000000001.abcdefghijklmnop\n")
			m.AddAlternativeString(mail.TypeTextHTML, "<p>Confirm your email address with this code:</p><p><code>ID0000000001.abcdefghijklmnop</code></p>")
			if err := client.Send(m); err != nil {
				b.Fatal(err)
			}
		}
		elapsed := time.Since(start)
		b.StopTimer()
		if got := len(srv.Messages()); got != b.N {
			b.Fatalf("%d delivered, want %d", got, b.N)
		}
		b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	})
}

func portOf(b *testing.B, s *smtptest.Server) int {
	var port int
	if _, err := fmt.Sscanf(s.URL(), "smtp://127.0.0.1:%d", &port); err != nil {
		b.Fatal(err)
	}
	return port
}
