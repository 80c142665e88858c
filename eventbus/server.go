package eventbus

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
)

// ErrPortInUse: the embedded server's port is taken, often by a NATS server already running.
// See PortInUseError.
var ErrPortInUse = errors.New("eventbus: port in use")

// PortInUseError names the port the embedded server could not listen on.
type PortInUseError struct {
	Addr string
	Err  error
}

func (e *PortInUseError) Error() string {
	return fmt.Sprintf("eventbus: embedded NATS server cannot listen on %s: it is in use", e.Addr)
}

// Unwrap makes errors.Is(err, ErrPortInUse) true and keeps the system's error.
func (e *PortInUseError) Unwrap() []error { return []error{ErrPortInUse, e.Err} }

// ServerOptions configure StartServer.
type ServerOptions struct {
	// StoreDir holds JetStream's files. Required.
	StoreDir string
	// CredentialsDir holds the NKEY seeds of the server's users (CredentialsFile), made with
	// mode 0600 at the first start. Required: the server admits no anonymous client.
	CredentialsDir string
	// Port is where the server listens on 127.0.0.1; 0 picks a free port. Ignored with NoListen.
	Port int
	// NoListen: the server opens no port at all; only in-process clients reach it.
	NoListen bool
	// Logger receives the server's warnings and errors (its notices at debug level). Nil
	// discards them.
	Logger *slog.Logger
	// StartTimeout bounds the wait for the server to accept connections. Default 10s.
	StartTimeout time.Duration
}

// Server is an embedded NATS server with JetStream, for the setup that needs no other process. It
// admits only its NKEY users (UserIdlog, UserReader, UserMailer), each with its own permissions.
type Server struct {
	ns       *server.Server
	url      string
	credsDir string
	self     nkeys.KeyPair // UserIdlog's, for the in-process connection
}

// StartServer starts a NATS server with JetStream in this process and waits until it accepts
// connections. A taken port gives an error matching ErrPortInUse; a seed file in CredentialsDir
// that others may read, one matching ErrCredentials.
func StartServer(o ServerOptions) (*Server, error) {
	switch {
	case o.StoreDir == "":
		return nil, fmt.Errorf("%w: StoreDir is empty", ErrInvalidOptions)
	case o.CredentialsDir == "":
		return nil, fmt.Errorf("%w: CredentialsDir is empty", ErrInvalidOptions)
	case o.Port < 0 || o.Port > 65535:
		return nil, fmt.Errorf("%w: Port (%d) is not from 0 to 65535", ErrInvalidOptions, o.Port)
	case o.StartTimeout < 0:
		return nil, fmt.Errorf("%w: StartTimeout (%v) cannot be negative", ErrInvalidOptions, o.StartTimeout)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.StartTimeout == 0 {
		o.StartTimeout = 10 * time.Second
	}
	// 0700: the stream holds personal data (emails) of every user.
	if err := os.MkdirAll(o.StoreDir, 0o700); err != nil {
		return nil, fmt.Errorf("eventbus: create the NATS store directory: %w", err)
	}
	nkeyUsers, self, err := serverUsers(o.CredentialsDir)
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(o.Port))
	port := o.Port
	if !o.NoListen && port != 0 {
		// Try the port first: the server reports a failed listen only through its logger.
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			if errors.Is(err, syscall.EADDRINUSE) {
				return nil, &PortInUseError{Addr: addr, Err: err}
			}
			return nil, fmt.Errorf("eventbus: embedded NATS server cannot listen on %s: %w", addr, err)
		}
		ln.Close()
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	ns, err := server.NewServer(&server.Options{
		ServerName: "idlog",
		Host:       "127.0.0.1",
		Port:       port,
		DontListen: o.NoListen,
		JetStream:  true,
		StoreDir:   o.StoreDir,
		NoSigs:     true, // the binary owns the signals
		Nkeys:      nkeyUsers,
	})
	if err != nil {
		return nil, fmt.Errorf("eventbus: embedded NATS server: %w", err)
	}
	logger := &serverLogger{log: o.Logger}
	ns.SetLoggerV2(logger, false, false, false)
	ns.Start()
	if !ns.ReadyForConnections(o.StartTimeout) {
		ns.Shutdown()
		ns.WaitForShutdown()
		if fatal := logger.fatal(); fatal != "" {
			if strings.Contains(fatal, "address already in use") {
				return nil, &PortInUseError{Addr: addr, Err: errors.New(fatal)}
			}
			return nil, fmt.Errorf("eventbus: embedded NATS server did not start: %s", fatal)
		}
		return nil, fmt.Errorf("eventbus: embedded NATS server not ready after %v", o.StartTimeout)
	}
	s := &Server{ns: ns, credsDir: o.CredentialsDir, self: self}
	if !o.NoListen {
		s.url = ns.ClientURL()
	}
	return s, nil
}

// ClientURL is where other processes reach the server (nats://127.0.0.1:4222), or "" when it
// does not listen.
func (s *Server) ClientURL() string { return s.url }

// CredentialsFile is the NKEY seed file a client of user u connects with.
func (s *Server) CredentialsFile(u User) string { return CredentialsFile(s.credsDir, u) }

// Shutdown stops the server and waits until it has, JetStream's files flushed.
func (s *Server) Shutdown() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
}

// serverLogger passes the server's log to slog. Its Fatalf only logs: the server's own logger
// would exit the process, which is the binary's decision.
type serverLogger struct {
	log *slog.Logger

	mu        sync.Mutex
	lastFatal string
}

func (l *serverLogger) fatal() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastFatal
}

func (l *serverLogger) Noticef(format string, v ...any) {
	l.log.Debug(fmt.Sprintf(format, v...), "component", "nats-server")
}
func (l *serverLogger) Warnf(format string, v ...any) {
	l.log.Warn(fmt.Sprintf(format, v...), "component", "nats-server")
}
func (l *serverLogger) Errorf(format string, v ...any) {
	l.log.Error(fmt.Sprintf(format, v...), "component", "nats-server")
}
func (l *serverLogger) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.mu.Lock()
	l.lastFatal = msg
	l.mu.Unlock()
	l.log.Error(msg, "component", "nats-server")
}
func (l *serverLogger) Debugf(string, ...any) {}
func (l *serverLogger) Tracef(string, ...any) {}
