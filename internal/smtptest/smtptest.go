// Package smtptest runs a real SMTP server (emersion/go-smtp) in a test process, on a free port
// of 127.0.0.1, and keeps the messages it accepts. It can be stopped and started again on the same
// port, and told to hold every message before accepting it (to crash a client mid-delivery).
package smtptest

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"net/mail"
	"sync"
	"testing"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Message is an accepted message.
type Message struct {
	From string
	To   []string
	Mail *mail.Message
	Raw  []byte
	TLS  bool   // it came over TLS (STARTTLS)
	User string // who authenticated, "" if nobody
}

// Options configure a Server. The zero value takes plain connections and no authentication.
type Options struct {
	// TLS, when set, offers STARTTLS with this configuration.
	TLS *tls.Config
	// User and Password, when set, are required (AUTH PLAIN) before MAIL.
	User, Password string
}

// Server is the SMTP server. Its methods are safe for concurrent use.
type Server struct {
	t    testing.TB
	addr string
	o    Options

	mu       sync.Mutex
	srv      *smtp.Server
	ln       net.Listener
	got      []Message
	hold     chan struct{} // while not nil, DATA waits for it to be closed
	receives int           // DATA commands begun
	changed  chan struct{} // closed and replaced at every change
}

// Start starts a server on a free port; the test's cleanup stops it.
func Start(t testing.TB) *Server { return StartWith(t, Options{}) }

// StartWith is Start with options.
func StartWith(t testing.TB, o Options) *Server {
	s := &Server{t: t, o: o, changed: make(chan struct{})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	s.serve(ln)
	t.Cleanup(s.Stop)
	return s
}

func (s *Server) serve(ln net.Listener) {
	srv := smtp.NewServer(backend{s})
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = s.o.TLS == nil
	srv.TLSConfig = s.o.TLS
	srv.MaxMessageBytes = 1 << 20
	srv.ErrorLog = log.New(io.Discard, "", 0) // a client killed on purpose is no news
	s.mu.Lock()
	s.srv, s.ln = srv, ln
	s.mu.Unlock()
	go srv.Serve(ln) //nolint:errcheck // ends with Close
}

// Stop closes the server: connections are refused until Restart.
func (s *Server) Stop() {
	s.mu.Lock()
	srv, ln := s.srv, s.ln
	s.srv, s.ln = nil, nil
	s.mu.Unlock()
	if srv != nil {
		ln.Close() // Serve may not have taken it yet: Close alone would miss it
		srv.Close()
	}
}

// Restart serves again on the same address.
func (s *Server) Restart() {
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		s.t.Fatal(err)
	}
	s.serve(ln)
}

// URL is the server's URL for courier.NewSMTP (no TLS).
func (s *Server) URL() string { return "smtp://" + s.addr + "?tls=none" }

// Hold makes DATA wait, once it has read a message, until Release.
func (s *Server) Hold() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hold == nil {
		s.hold = make(chan struct{})
	}
}

// Release lets held and later messages be accepted.
func (s *Server) Release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hold != nil {
		close(s.hold)
		s.hold = nil
	}
}

// Messages returns the accepted messages, in order.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.got...)
}

// Receives is how many DATA commands began (accepted or not).
func (s *Server) Receives() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.receives
}

// Changed returns a channel closed at the next DATA begun or message accepted.
func (s *Server) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

func (s *Server) notify() { // with mu held
	close(s.changed)
	s.changed = make(chan struct{})
}

type backend struct{ s *Server }

func (b backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	x := &session{s: b.s, conn: c}
	if b.s.o.User != "" {
		return authSession{x}, nil
	}
	return x, nil
}

type session struct {
	s    *Server
	conn *smtp.Conn
	from string
	to   []string
	user string
}

type authSession struct{ *session }

func (a authSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (a authSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, password string) error {
		if user != a.s.o.User || password != a.s.o.Password {
			return errors.New("invalid credentials")
		}
		a.user = user
		return nil
	}), nil
}

func (x *session) Reset()        { x.from, x.to = "", nil }
func (x *session) Logout() error { return nil }
func (x *session) Mail(from string, _ *smtp.MailOptions) error {
	if x.s.o.User != "" && x.user == "" {
		return smtp.ErrAuthRequired
	}
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
	x.s.mu.Lock()
	x.s.receives++
	x.s.notify()
	hold := x.s.hold
	x.s.mu.Unlock()
	if hold != nil {
		<-hold
	}
	x.s.mu.Lock()
	_, tls := x.conn.TLSConnectionState()
	x.s.got = append(x.s.got, Message{From: x.from, To: x.to, Mail: m, Raw: raw, TLS: tls, User: x.user})
	x.s.notify()
	x.s.mu.Unlock()
	return nil
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return s.addr }
