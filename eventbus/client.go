package eventbus

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// ErrNotConnected: NATS cannot be reached now. The error names the server (never its password)
// and, if known, why the last attempt failed.
var ErrNotConnected = errors.New("eventbus: not connected to NATS")

// ErrInvalidOptions: a constructor was given options it cannot use. The error names the value.
var ErrInvalidOptions = errors.New("eventbus: invalid options")

// ConnectError is a failed attempt to reach NATS. errors.Is(err, ErrNotConnected) holds, and so
// does errors.Is with the NATS client's own error (nats.ErrAuthorization, ...).
type ConnectError struct {
	URL string // the server, its password replaced by xxxxx
	Err error
	msg string // Err's message without secrets
}

func (e *ConnectError) Error() string {
	return fmt.Sprintf("eventbus: connect to NATS at %s: %s", e.URL, e.msg)
}

// Unwrap lets errors.Is see both ErrNotConnected and the client's error.
func (e *ConnectError) Unwrap() []error { return []error{ErrNotConnected, e.Err} }

// ClientOptions configure NewClient.
type ClientOptions struct {
	// URL names the NATS server: nats://[user:password@]host:4222, or several, comma-separated.
	URL string
	// Server, when set instead of URL, is an embedded server to connect to in-process.
	Server *Server
	// Name is the connection's name on the server. Default "idlog".
	Name string
	// Logger receives connection changes. Nil discards them.
	Logger *slog.Logger
	// MinBackoff and MaxBackoff bound the wait between connection attempts, which doubles from
	// the one to the other. Defaults 100ms and 5s.
	MinBackoff, MaxBackoff time.Duration
	// DialTimeout bounds one connection attempt. Default 5s.
	DialTimeout time.Duration
	// Credentials, with URL, is a NATS credentials file to authenticate with: a .creds file
	// (user JWT and NKEY seed) or an NKEY seed file. It must be private to its owner (0600).
	// Empty: the user and password of the URL, if any. An embedded Server needs none: the client
	// is idlog's own user.
	Credentials string
	// TLSCAFile, with URL, is a PEM file of the certificate authorities to trust instead of the
	// system's; setting it requires TLS. TLSCertFile and TLSKeyFile, both or neither, are a client
	// certificate for servers that verify clients.
	TLSCAFile, TLSCertFile, TLSKeyFile string
	// Signer signs the events published through this client. Required by NewClient: idlog
	// publishes no event that consumers cannot verify.
	Signer *EventSigner
}

func (o ClientOptions) validate() (ClientOptions, error) {
	switch {
	case o.URL == "" && o.Server == nil:
		return o, fmt.Errorf("%w: neither URL nor Server is set", ErrInvalidOptions)
	case o.URL != "" && o.Server != nil:
		return o, fmt.Errorf("%w: URL (%s) and Server are both set", ErrInvalidOptions, redactURL(o.URL))
	case o.Server != nil && (o.Credentials != "" || o.TLSCAFile != "" || o.TLSCertFile != "" || o.TLSKeyFile != ""):
		return o, fmt.Errorf("%w: Credentials and TLS files are for a server named by URL, not the embedded Server", ErrInvalidOptions)
	case (o.TLSCertFile == "") != (o.TLSKeyFile == ""):
		return o, fmt.Errorf("%w: TLSCertFile (%s) and TLSKeyFile (%s) go together", ErrInvalidOptions, o.TLSCertFile, o.TLSKeyFile)
	case o.MinBackoff < 0 || o.MaxBackoff < 0 || o.DialTimeout < 0:
		return o, fmt.Errorf("%w: MinBackoff (%v), MaxBackoff (%v) and DialTimeout (%v) cannot be negative", ErrInvalidOptions, o.MinBackoff, o.MaxBackoff, o.DialTimeout)
	}
	if o.Server == nil {
		for _, u := range strings.Split(o.URL, ",") {
			if p, err := url.Parse(strings.TrimSpace(u)); err != nil || p.Host == "" {
				return o, fmt.Errorf("%w: URL (%s) is not a list of nats://host:port URLs", ErrInvalidOptions, redactURL(o.URL))
			}
		}
	}
	if o.Credentials != "" {
		if _, err := credentialsOption(o.Credentials); err != nil {
			return o, err
		}
	}
	if _, err := o.tlsOptions(); err != nil {
		return o, err
	}
	if o.Name == "" {
		o.Name = "idlog"
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.MinBackoff == 0 {
		o.MinBackoff = 100 * time.Millisecond
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = 5 * time.Second
	}
	if o.MaxBackoff < o.MinBackoff {
		return o, fmt.Errorf("%w: MaxBackoff (%v) cannot be lower than MinBackoff (%v)", ErrInvalidOptions, o.MaxBackoff, o.MinBackoff)
	}
	if o.DialTimeout == 0 {
		o.DialTimeout = 5 * time.Second
	}
	return o, nil
}

// Client is idlog's connection to NATS, shared by the relay and the notifier. It keeps trying
// until the server answers, with growing pauses, and reconnects by itself after a connection
// is lost; meanwhile publishes fail at once rather than queue in memory, so an event is only
// ever in one place: the event store until JetStream has acknowledged it. Safe for concurrent use.
type Client struct {
	opts    ClientOptions
	display string   // the URL as errors and logs show it
	secrets []string // what must never appear in an error

	mu      sync.Mutex
	nc      *nats.Conn    // nil until the first connection
	lastErr error         // of the last failed attempt, nil once connected
	ready   chan struct{} // closed at the first connection
	tried   chan struct{} // closed after the first attempt, whatever its outcome
	change  chan struct{} // closed and replaced at every (re)connection

	cancel context.CancelFunc // stops dialLoop
	done   chan struct{}      // closed when dialLoop returned
	closed chan struct{}      // closed by Close
	once   sync.Once
}

// NewClient checks o and starts connecting in the background. It does not wait for the server:
// Conn does, and Check tells whether it answers.
func NewClient(o ClientOptions) (*Client, error) {
	o, err := o.validate()
	if err != nil {
		return nil, err
	}
	if o.Signer == nil {
		return nil, fmt.Errorf("%w: Signer is required", ErrInvalidOptions)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Client{
		opts:   o,
		ready:  make(chan struct{}),
		tried:  make(chan struct{}),
		change: make(chan struct{}),
		cancel: cancel,
		done:   make(chan struct{}),
		closed: make(chan struct{}),
	}
	if o.Server != nil {
		c.display = "the embedded NATS server (in-process)"
	} else {
		c.display = redactURL(o.URL)
		c.secrets = urlSecrets(o.URL)
	}
	go c.dialLoop(ctx)
	return c, nil
}

// URL is the server as logs show it: its password replaced by xxxxx.
func (c *Client) URL() string { return c.display }

// Conn waits for the first connection and returns it. Once connected, it stays the same *nats.Conn
// across reconnections. When ctx ends first, the error says why the last attempt failed.
func (c *Client) Conn(ctx context.Context) (*nats.Conn, error) {
	select {
	case <-c.closed:
		return nil, fmt.Errorf("%w: the client is closed", ErrNotConnected)
	default:
	}
	select {
	case <-c.ready:
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.nc, nil
	case <-c.closed:
		return nil, fmt.Errorf("%w: the client is closed", ErrNotConnected)
	case <-ctx.Done():
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.lastErr != nil {
			return nil, c.lastErr
		}
		return nil, fmt.Errorf("%w: %s: %w", ErrNotConnected, c.display, ctx.Err())
	}
}

// Check reports whether NATS answers now: nil when connected, else an error matching
// ErrNotConnected. It suits a readiness probe.
func (c *Client) Check(context.Context) error {
	c.mu.Lock()
	nc, lastErr := c.nc, c.lastErr
	c.mu.Unlock()
	if nc == nil {
		if lastErr != nil {
			return lastErr
		}
		return fmt.Errorf("%w: %s: connecting", ErrNotConnected, c.display)
	}
	if nc.IsConnected() {
		return nil
	}
	if err := nc.LastError(); err != nil {
		return fmt.Errorf("%w: %s: %s (%s)", ErrNotConnected, c.display, nc.Status(), c.scrub(err.Error()))
	}
	return fmt.Errorf("%w: %s: %s", ErrNotConnected, c.display, nc.Status())
}

// connUp returns the connection if NATS answers now, and waits (within ctx) only if the first
// attempt to connect is still under way: callers serving a request should not wait for a
// server that is known to be away.
func (c *Client) connUp(ctx context.Context) (*nats.Conn, error) {
	select {
	case <-c.tried:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %s: %w", ErrNotConnected, c.display, ctx.Err())
	}
	if err := c.Check(ctx); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nc, nil
}

// connected reports whether NATS answers now.
func (c *Client) connected() bool { return c.Check(context.Background()) == nil }

// changed returns a channel that is closed at the next connection or reconnection.
func (c *Client) changed() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.change
}

// Close stops connecting and closes the connection. Publishes fail after it.
func (c *Client) Close() {
	c.once.Do(func() { close(c.closed) })
	c.cancel()
	<-c.done
	c.mu.Lock()
	nc := c.nc
	c.mu.Unlock()
	if nc != nil {
		nc.Close()
	}
}

func (c *Client) dialLoop(ctx context.Context) {
	defer close(c.done)
	for attempt := 0; ; attempt++ {
		nc, err := c.dial()
		c.mu.Lock()
		if err == nil {
			c.nc, c.lastErr = nc, nil
			close(c.ready)
			c.signalLocked()
		} else {
			c.lastErr = err
		}
		c.mu.Unlock()
		if attempt == 0 {
			close(c.tried)
		}
		if err == nil {
			c.opts.Logger.Info("connected to NATS", "url", c.display)
			return
		}
		wait := backoff(c.opts.MinBackoff, c.opts.MaxBackoff, attempt)
		c.opts.Logger.Warn("cannot connect to NATS, retrying", "error", err, "retry_in", wait.Round(time.Millisecond))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

func (c *Client) signalLocked() {
	close(c.change)
	c.change = make(chan struct{})
}

// dial makes one connection attempt. Once connected, the NATS client reconnects by itself, for
// ever, pausing as dialLoop does.
func (c *Client) dial() (*nats.Conn, error) {
	log := c.opts.Logger
	opts := []nats.Option{
		nats.Name(c.opts.Name),
		nats.Timeout(c.opts.DialTimeout),
		nats.MaxReconnects(-1),
		// A publish while disconnected fails at once instead of waiting in a buffer that the next
		// connection would flush after newer publishes: the relay republishes from its checkpoint.
		nats.ReconnectBufSize(-1),
		// A server that refused the credentials may accept them after its configuration is fixed.
		nats.IgnoreAuthErrorAbort(),
		nats.CustomReconnectDelay(func(attempts int) time.Duration {
			return backoff(c.opts.MinBackoff, c.opts.MaxBackoff, attempts-1)
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("disconnected from NATS", "url", c.display, "error", c.scrub(err.Error()))
			}
		}),
		nats.ReconnectHandler(func(*nats.Conn) {
			log.Info("reconnected to NATS", "url", c.display)
			c.mu.Lock()
			c.signalLocked()
			c.mu.Unlock()
		}),
		nats.ReconnectErrHandler(func(_ *nats.Conn, err error) {
			log.Debug("NATS reconnection attempt failed", "url", c.display, "error", c.scrub(err.Error()))
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			log.Warn("NATS error", "url", c.display, "error", c.scrub(err.Error()))
		}),
	}
	url := c.opts.URL
	if c.opts.Server != nil {
		self := c.opts.Server.self
		pub, err := self.PublicKey()
		if err != nil {
			return nil, &ConnectError{URL: c.display, Err: err, msg: err.Error()}
		}
		opts = append(opts, nats.InProcessServer(c.opts.Server.ns), nats.Nkey(pub, self.Sign))
		url = "" // the client wants a URL; the in-process connection ignores it
	} else {
		if c.opts.Credentials != "" {
			// Read again at each dial: a rotated file is picked up by the next connection.
			opt, err := credentialsOption(c.opts.Credentials)
			if err != nil {
				return nil, &ConnectError{URL: c.display, Err: err, msg: err.Error()}
			}
			opts = append(opts, opt)
		}
		tlsOpts, err := c.opts.tlsOptions()
		if err != nil {
			return nil, &ConnectError{URL: c.display, Err: err, msg: err.Error()}
		}
		opts = append(opts, tlsOpts...)
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, &ConnectError{URL: c.display, Err: err, msg: c.scrub(err.Error())}
	}
	return nc, nil
}

// Dial makes one connection attempt to the server(s) at o.URL, with o's credentials and TLS
// files, for a command that should fail at once rather than wait: its error names the server
// without password. o.Signer is not needed: such a command reads.
func Dial(o ClientOptions) (*nats.Conn, error) {
	if o.Server != nil {
		return nil, fmt.Errorf("%w: Dial reaches a server by URL", ErrInvalidOptions)
	}
	o, err := o.validate()
	if err != nil {
		return nil, err
	}
	c := &Client{opts: o, display: redactURL(o.URL), secrets: urlSecrets(o.URL), change: make(chan struct{})}
	return c.dial()
}

// tlsOptions are the connection options of the TLS files: none without files.
func (o ClientOptions) tlsOptions() ([]nats.Option, error) {
	if o.TLSCAFile == "" && o.TLSCertFile == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.TLSCAFile != "" {
		pem, err := os.ReadFile(o.TLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("%w: TLSCAFile: %w", ErrInvalidOptions, err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: TLSCAFile (%s) holds no PEM certificate", ErrInvalidOptions, o.TLSCAFile)
		}
	}
	if o.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(o.TLSCertFile, o.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("%w: TLSCertFile (%s) and TLSKeyFile (%s): %w", ErrInvalidOptions, o.TLSCertFile, o.TLSKeyFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return []nats.Option{nats.Secure(cfg)}, nil
}

// scrub removes the URL's secrets from a message of the NATS client.
func (c *Client) scrub(msg string) string {
	for _, s := range c.secrets {
		msg = strings.ReplaceAll(msg, s, redacted)
	}
	return msg
}

// backoff is the pause before attempt n (from 0): lo doubled n times, capped at hi, then spread
// over [d/2, d] so that many clients do not retry in step.
func backoff(lo, hi time.Duration, n int) time.Duration {
	d := lo
	for i := 0; i < n && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	return d/2 + rand.N(d/2+1)
}

const redacted = "xxxxx"

// redactURL returns a comma-separated list of NATS URLs with each password replaced by xxxxx;
// a user name alone is a token in NATS, and is replaced whole.
func redactURL(list string) string {
	parts := strings.Split(list, ",")
	for i, raw := range parts {
		u, err := url.Parse(strings.TrimSpace(raw))
		if err != nil {
			parts[i] = "(a URL that does not parse)"
			continue
		}
		if u.User != nil {
			if _, ok := u.User.Password(); ok {
				u.User = url.UserPassword(u.User.Username(), redacted)
			} else {
				u.User = url.User(redacted)
			}
		}
		parts[i] = u.String()
	}
	return strings.Join(parts, ",")
}

// urlSecrets lists the passwords and tokens of a URL list, raw and decoded, longest first.
func urlSecrets(list string) []string {
	var out []string
	for _, raw := range strings.Split(list, ",") {
		raw = strings.TrimSpace(raw)
		u, err := url.Parse(raw)
		if err != nil || u.User == nil {
			continue
		}
		secret, ok := u.User.Password()
		if !ok {
			secret = u.User.Username()
		}
		if secret == "" {
			continue
		}
		out = append(out, secret)
		// As written in the URL too, in case a library echoes it undecoded.
		if at := strings.LastIndex(raw, "@"); at > 0 {
			if i := strings.Index(raw, "://"); i >= 0 && i+3 < at {
				info := raw[i+3 : at]
				if _, pass, ok := strings.Cut(info, ":"); ok {
					out = append(out, pass)
				} else {
					out = append(out, info)
				}
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}
