package courier

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// SMS formats of an HTTP SMS sender.
const (
	// SMSTwilio posts a form (To, From, Body) with basic auth, as Twilio's Messages API takes it.
	SMSTwilio = "twilio"
	// SMSWebhook posts JSON {"id","kind","to","from","body","token"} to any endpoint.
	SMSWebhook = "webhook"
)

// SMSOptions configure an HTTP SMS sender.
type SMSOptions struct {
	// Format is SMSTwilio or SMSWebhook.
	Format string
	// URL receives the POST (for Twilio, https://api.twilio.com/2010-04-01/Accounts/<sid>/Messages.json).
	URL string
	// From is the sender number or name.
	From string
	// User and Password, when set, are sent as basic auth (Twilio: account SID and auth token).
	User, Password string
	// Client sends the requests; nil means one with a 15 s timeout.
	Client *http.Client
}

// SMS sends text messages by HTTP. Every request carries the message id in an Idempotency-Key
// header, so an endpoint that dedups sends a retried message once. Any 2xx answer is a delivery.
type SMS struct{ o SMSOptions }

// NewSMS checks o and returns the sender.
func NewSMS(o SMSOptions) (*SMS, error) {
	if o.Format != SMSTwilio && o.Format != SMSWebhook {
		return nil, fmt.Errorf("courier: SMS format %q (want %s or %s)", o.Format, SMSTwilio, SMSWebhook)
	}
	if u, err := url.Parse(o.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("courier: SMS URL %q must be an absolute http(s) URL", o.URL)
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: 15 * time.Second}
	}
	return &SMS{o: o}, nil
}

// Send implements Sender: the body is the rendered text.
func (s *SMS) Send(ctx context.Context, e Envelope) error {
	var body io.Reader
	var ctype string
	text := strings.TrimSpace(e.Text)
	if s.o.Format == SMSTwilio {
		body = strings.NewReader(url.Values{"To": {e.To}, "From": {s.o.From}, "Body": {text}}.Encode())
		ctype = "application/x-www-form-urlencoded"
	} else {
		b, err := json.Marshal(map[string]string{"id": e.ID.String(), "kind": e.Kind, "to": e.To, "from": s.o.From, "body": text, "token": e.Token})
		if err != nil {
			return err
		}
		body, ctype = bytes.NewReader(b), "application/json"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.o.URL, body)
	if err != nil {
		return fmt.Errorf("courier: SMS request: %w", err)
	}
	req.Header.Set("Content-Type", ctype)
	req.Header.Set("Idempotency-Key", e.ID.String())
	if s.o.User != "" {
		req.SetBasicAuth(s.o.User, s.o.Password)
	}
	resp, err := s.o.Client.Do(req)
	if err != nil {
		return fmt.Errorf("courier: SMS send: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("courier: SMS endpoint answered %s", resp.Status)
	}
	return nil
}
