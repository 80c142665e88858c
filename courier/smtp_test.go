package courier_test

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/idlog/idlog/commands"
	"github.com/idlog/idlog/courier"
	"github.com/idlog/idlog/internal/smtptest"
)

// TestSMTPStartTLSAndAuth: with tls=required and credentials in the URL, the message goes over
// STARTTLS, authenticated; a wrong password fails the send and keeps the message queued.
func TestSMTPStartTLSAndAuth(t *testing.T) {
	t.Parallel()
	// httptest's certificate, valid for 127.0.0.1, and a client configuration that trusts it.
	ts := httptest.NewTLSServer(http.NotFoundHandler())
	defer ts.Close()
	cert := ts.TLS.Certificates[0]
	roots := ts.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	srv := smtptest.StartWith(t, smtptest.Options{TLS: &tls.Config{Certificates: []tls.Certificate{cert}}, User: "courier", Password: "s3cret"})
	clientTLS := &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}

	e := newEnv(t, backends()[0])
	sender := func(password string) *courier.SMTP {
		s, err := courier.NewSMTP(courier.SMTPOptions{URL: "smtp://courier:" + password + "@" + srv.Addr() + "?tls=required",
			From: "idlog@example.com", Timeout: 5 * time.Second, TLSConfig: clientTLS})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	ctx := context.Background()
	if _, err := e.app.Commands.RegisterUser.Handle(ctx, commands.RegisterUser{Email: "tls@example.com", Password: "Correct-Horse-9-battery"}); err != nil {
		t.Fatal(err)
	}
	drain(t, e.courier(t, sender("pw-Zq81x"), nil))
	if q := e.queue(t); len(q) != 1 || q[0].Attempts != 1 || q[0].LastError == "" || len(srv.Messages()) != 0 {
		t.Fatalf("with a wrong password: queue %+v, %d received", q, len(srv.Messages()))
	}
	if strings.Contains(e.queue(t)[0].LastError, "pw-Zq81x") {
		t.Fatalf("the password is in the recorded error: %q", e.queue(t)[0].LastError)
	}
	e.skew.Add(int64(time.Hour))
	drain(t, e.courier(t, sender("s3cret"), nil))
	got := srv.Messages()
	if len(got) != 1 || !got[0].TLS || got[0].User != "courier" {
		t.Fatalf("received %d; TLS %v, user %q", len(got), len(got) > 0 && got[0].TLS, func() string {
			if len(got) > 0 {
				return got[0].User
			}
			return ""
		}())
	}
}
