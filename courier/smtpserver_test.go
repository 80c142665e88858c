package courier_test

import (
	"bytes"
	"io"
	"net"
	"net/mail"
	"sync"
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/idlog/idlog/courier"
)

// smtpServer is a real SMTP server (emersion/go-smtp) in the test process, on a free port,
// keeping what it receives. It can be stopped and started again on the same port.
type smtpServer struct {
	t    testing.TB
	addr string
	srv  *smtp.Server
	ln   net.Listener

	mu  sync.Mutex
	got []received
}

type received struct {
	from string
	to   []string
	msg  *mail.Message
	text string
}

func startSMTP(t testing.TB) *smtpServer {
	s := &smtpServer{t: t}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	s.serve(ln)
	t.Cleanup(s.stop)
	return s
}

func (s *smtpServer) serve(ln net.Listener) {
	srv := smtp.NewServer(smtpBackend{s})
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = true
	s.mu.Lock()
	s.srv, s.ln = srv, ln
	s.mu.Unlock()
	go srv.Serve(ln) //nolint:errcheck // ends with Close
}

// stop closes the server: connections are refused until start.
func (s *smtpServer) stop() {
	s.mu.Lock()
	srv, ln := s.srv, s.ln
	s.srv, s.ln = nil, nil
	s.mu.Unlock()
	if srv != nil {
		ln.Close() // Serve may not have taken it yet: Close alone would miss it
		srv.Close()
	}
}

// start serves again on the same address.
func (s *smtpServer) start() {
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		s.t.Fatal(err)
	}
	s.serve(ln)
}

func (s *smtpServer) url() string { return "smtp://" + s.addr + "?tls=none" }

func (s *smtpServer) messages() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.got...)
}

type smtpBackend struct{ s *smtpServer }

func (b smtpBackend) NewSession(*smtp.Conn) (smtp.Session, error) { return &session{s: b.s}, nil }

type session struct {
	s    *smtpServer
	from string
	to   []string
}

func (x *session) Reset()        { x.from, x.to = "", nil }
func (x *session) Logout() error { return nil }
func (x *session) Mail(from string, _ *smtp.MailOptions) error {
	x.from = from
	return nil
}
func (x *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	x.to = append(x.to, to)
	return nil
}
func (x *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return err
	}
	text, err := courier.TextBody(m)
	if err != nil {
		return err
	}
	x.s.mu.Lock()
	x.s.got = append(x.s.got, received{from: x.from, to: x.to, msg: m, text: text})
	x.s.mu.Unlock()
	return nil
}
