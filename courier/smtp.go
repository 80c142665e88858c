package courier

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/url"
	"strconv"
	"sync"
	"time"

	mail "github.com/wneessen/go-mail"
)

// SMTPOptions configure an SMTP sender.
type SMTPOptions struct {
	// URL is smtp://[user:password@]host[:port][?tls=opportunistic|required|none] (STARTTLS;
	// opportunistic by default, port 587) or smtps://... (TLS from the first byte, port 465).
	URL string
	// From is the sender address of every message.
	From string
	// Timeout bounds connecting and each command. 0 means 15 s.
	Timeout time.Duration
	// TLSConfig, when set, replaces the default (server name from the URL, system roots).
	TLSConfig *tls.Config
}

// SMTP sends e-mail through an SMTP server with go-mail. It keeps one connection open between
// messages and dials again when the server dropped it. It is safe for concurrent use; sends are
// serialised on the connection.
type SMTP struct {
	o      SMTPOptions
	client *mail.Client
	mu     sync.Mutex
	open   bool
}

// NewSMTP checks o and returns the sender. It does not connect until the first Send.
func NewSMTP(o SMTPOptions) (*SMTP, error) {
	u, err := url.Parse(o.URL)
	if err != nil || (u.Scheme != "smtp" && u.Scheme != "smtps") || u.Hostname() == "" {
		return nil, fmt.Errorf("courier: SMTP URL must be smtp://host[:port] or smtps://host[:port]")
	}
	if o.From == "" {
		return nil, fmt.Errorf("courier: SMTP needs a From address")
	}
	if o.Timeout == 0 {
		o.Timeout = 15 * time.Second
	}
	opts := []mail.Option{mail.WithTimeout(o.Timeout)}
	port := 587
	if u.Scheme == "smtps" {
		port = 465
		opts = append(opts, mail.WithSSL())
	} else {
		switch p := u.Query().Get("tls"); p {
		case "", "opportunistic":
			opts = append(opts, mail.WithTLSPortPolicy(mail.TLSOpportunistic))
		case "required":
			opts = append(opts, mail.WithTLSPortPolicy(mail.TLSMandatory))
		case "none":
			opts = append(opts, mail.WithTLSPortPolicy(mail.NoTLS))
		default:
			return nil, fmt.Errorf("courier: SMTP tls=%q (want opportunistic, required or none)", p)
		}
	}
	if s := u.Port(); s != "" {
		if port, err = strconv.Atoi(s); err != nil {
			return nil, fmt.Errorf("courier: SMTP port %q: %w", s, err)
		}
	}
	opts = append(opts, mail.WithPort(port))
	if u.User != nil {
		pw, _ := u.User.Password()
		opts = append(opts, mail.WithSMTPAuth(mail.SMTPAuthAutoDiscover), mail.WithUsername(u.User.Username()), mail.WithPassword(pw))
	}
	tlsConfig := o.TLSConfig
	if tlsConfig == nil {
		tlsConfig = &tls.Config{ServerName: u.Hostname(), MinVersion: tls.VersionTLS12}
	}
	opts = append(opts, mail.WithTLSConfig(tlsConfig))
	c, err := mail.NewClient(u.Hostname(), opts...)
	if err != nil {
		return nil, fmt.Errorf("courier: SMTP client: %w", err)
	}
	return &SMTP{o: o, client: c}, nil
}

// Send implements Sender.
func (s *SMTP) Send(ctx context.Context, e Envelope) error {
	m, err := newMail(s.o.From, e, mail.EncodingQP)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// A connection kept from an earlier send may have been closed by the server: one fresh try.
	for attempt := 0; ; attempt++ {
		reused := s.open
		if !s.open {
			if err := s.client.DialWithContext(ctx); err != nil {
				return fmt.Errorf("courier: SMTP connect: %w", err)
			}
			s.open = true
		}
		err := s.client.Send(m)
		if err == nil {
			return nil
		}
		_ = s.client.Close()
		s.open = false
		if !reused || attempt > 0 {
			return fmt.Errorf("courier: SMTP send: %w", err)
		}
	}
}

// Close closes the connection, if one is open.
func (s *SMTP) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.open {
		return nil
	}
	s.open = false
	return s.client.Close()
}
