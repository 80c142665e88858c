// Package config holds idlog's run-time configuration: the IDLOG_* environment variables, the
// command-line flags that override them, and their validation. A bad value is reported with the
// variable (or flag) that carried it, and a password inside a URL is never printed.
package config

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ErrInvalid matches every *InvalidError.
var ErrInvalid = errors.New("invalid configuration")

// InvalidError is a bad configuration value. Its message names where the value came from and the
// value itself, redacted if it may hold a password: invalid IDLOG_HTTP_ADDR "x": want host:port.
type InvalidError struct {
	Source string // the environment variable (IDLOG_HTTP_ADDR) or flag (-http-addr)
	Value  string // as given, except that passwords are replaced by xxxxx
	Reason string
}

func (e *InvalidError) Error() string {
	return fmt.Sprintf("invalid %s %q: %s", e.Source, e.Value, e.Reason)
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *InvalidError) Is(target error) bool { return target == ErrInvalid }

// Config is a validated configuration. Use Load to get one.
type Config struct {
	// HTTPAddr is the host:port the HTTP server listens on; port 0 picks a free port.
	HTTPAddr string
	// DataDir holds whatever idlog keeps on local disk (the SQLite database by default).
	DataDir string
	// DatabaseURL, when set (postgres://...), puts the event store in PostgreSQL.
	DatabaseURL string
	// ReadDatabaseURL, when set (postgres://...), names a streaming replica (a hot standby) of
	// DatabaseURL that answers the read-model queries; session checks, commands and the projectors
	// stay on DatabaseURL. It needs DatabaseURL.
	ReadDatabaseURL string
	// ReadMaxWait bounds how long a read waits for the replica to replay the last write (and a
	// write's answer for the replica to replay it) before the read goes to DatabaseURL.
	ReadMaxWait time.Duration
	// EventStoreURL, when set (esdb://...), puts the event store in EventStoreDB. It wins over
	// DatabaseURL for the event store.
	EventStoreURL string
	// NATSURL names an external NATS server for the event relay and notifications. Empty: idlog
	// runs an embedded NATS server, keeping JetStream's files in DataDir.
	NATSURL string
	// NATSPort is where the embedded NATS server listens on 127.0.0.1; 0 picks a free port.
	NATSPort int
	// NATSNoListen: the embedded NATS server opens no port; only idlog itself reaches it.
	NATSNoListen bool
	// NATSPortChosen: IDLOG_NATS_PORT (or its flag) was given, rather than the default taken.
	NATSPortChosen bool
	// NATSDuplicateWindow is how long JetStream remembers event ids, to drop events republished
	// after a failure. At least 2 minutes.
	NATSDuplicateWindow time.Duration
	// NATSMaxAge and NATSMaxBytes limit what the IDLOG_EVENTS stream keeps; 0 keeps everything.
	NATSMaxAge   time.Duration
	NATSMaxBytes int64
	// NATSAuth secures the connection to NATS and signs the events (IDLOG_NATS_CREDS, ...).
	NATSAuth NATSAuth
	// Audit signs the audit checkpoints and keeps a copy of them (IDLOG_AUDIT_KEY_FILE, ...).
	Audit Audit
	// Blobs say where the files of identity documents go (IDLOG_BLOB_DIR, IDLOG_BLOB_S3_URL).
	Blobs Blobs
	// LogLevel is the lowest level logged.
	LogLevel slog.Level
	// LogFormat is "text" or "json".
	LogFormat string
	// LogPersonalData keeps email addresses, client addresses and user agents in log attributes;
	// false leaves them out (log messages never hold them).
	LogPersonalData bool
	// ShutdownTimeout bounds a graceful shutdown: in-flight requests get this long to finish.
	ShutdownTimeout time.Duration
	// RequestTimeout bounds how long a request may take before its answer starts (past it: 503).
	// PostgreSQL sessions get statement, lock and idle-in-transaction timeouts derived from it.
	RequestTimeout time.Duration
	// Accounts are the settings of sign-up, sign-in and access tokens.
	Accounts Accounts
	// Courier delivers e-mail and SMS from the outbox (IDLOG_SMTP_URL, IDLOG_PUBLIC_URL, ...).
	Courier Courier
}

// Engine names the backend that holds the event store.
type Engine string

// The event store engines.
const (
	SQLite       Engine = "sqlite"
	Postgres     Engine = "postgres"
	EventStoreDB Engine = "eventstoredb"
)

// sqliteDBFile is the SQLite database's name inside the data directory.
const sqliteDBFile = "idlog.db"

// EventStore says which engine holds the event store: EventStoreDB if its URL is set, else
// PostgreSQL if the database URL is set, else SQLite in the data directory.
func (c Config) EventStore() Engine {
	switch {
	case c.EventStoreURL != "":
		return EventStoreDB
	case c.DatabaseURL != "":
		return Postgres
	default:
		return SQLite
	}
}

// natsNoPort is the IDLOG_NATS_PORT value that opens no port.
const natsNoPort = "none"

// natsDir is JetStream's directory inside the data directory.
const natsDir = "nats"

// NATSStoreDir is where the embedded NATS server keeps JetStream's files.
func (c Config) NATSStoreDir() string { return filepath.Join(c.DataDir, natsDir) }

// natsPortString is IDLOG_NATS_PORT in effect: a number, or "none".
func (c Config) natsPortString() string {
	if c.NATSNoListen {
		return natsNoPort
	}
	return strconv.Itoa(c.NATSPort)
}

// SQLitePath is the SQLite database file inside the data directory.
func (c Config) SQLitePath() string { return filepath.Join(c.DataDir, sqliteDBFile) }

// LogValue logs the configuration with every URL password replaced, so logging a Config is safe.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("http_addr", c.HTTPAddr),
		slog.String("data_dir", c.DataDir),
		slog.String("database_url", RedactURL(c.DatabaseURL)),
		slog.String("read_database_url", RedactURL(c.ReadDatabaseURL)),
		slog.Duration("read_max_wait", c.ReadMaxWait),
		slog.String("eventstore_url", RedactURL(c.EventStoreURL)),
		slog.String("nats_url", RedactURL(c.NATSURL)),
		slog.String("nats_port", c.natsPortString()),
		slog.Duration("nats_duplicate_window", c.NATSDuplicateWindow),
		slog.Duration("nats_max_age", c.NATSMaxAge),
		slog.Int64("nats_max_bytes", c.NATSMaxBytes),
		slog.Any("nats_auth", c.NATSAuth),
		slog.Any("audit", c.Audit),
		slog.Any("blobs", c.Blobs),
		slog.String("log_level", c.LogLevel.String()),
		slog.String("log_format", c.LogFormat),
		slog.Bool("log_personal_data", c.LogPersonalData),
		slog.Duration("shutdown_timeout", c.ShutdownTimeout),
		slog.Duration("request_timeout", c.RequestTimeout),
		slog.Any("accounts", c.Accounts),
		slog.Any("courier", c.Courier),
	)
}

// setting is one configurable value: where it comes from and how it is checked.
type setting struct {
	env, flag, def, usage string
	// secret: the value is a URL that may carry a password, shown redacted.
	secret bool
	// hidden: a bad value is never shown (it may be a key's seed given by mistake).
	hidden bool
	apply  func(c *Config, v string) error
}

var settings = []setting{
	{
		env: "IDLOG_HTTP_ADDR", flag: "http-addr", def: "127.0.0.1:8080",
		usage: "`host:port` the HTTP server listens on",
		apply: func(c *Config, v string) error {
			if err := checkHostPort(v); err != nil {
				return err
			}
			c.HTTPAddr = v
			return nil
		},
	},
	{
		env: "IDLOG_DATA_DIR", flag: "data-dir", def: "./idlog-data",
		usage: "`directory` for local data (the SQLite database by default)",
		apply: func(c *Config, v string) error {
			if strings.TrimSpace(v) == "" {
				return errors.New("must not be empty")
			}
			c.DataDir = filepath.Clean(v)
			return nil
		},
	},
	{
		env: "IDLOG_DATABASE_URL", flag: "database-url", secret: true,
		usage: "PostgreSQL `URL` (postgres://user:password@host:5432/db?sslmode=disable); empty means SQLite in the data directory",
		apply: func(c *Config, v string) error {
			if err := checkURL(v, "postgres", "postgresql"); err != nil {
				return err
			}
			c.DatabaseURL = v
			return nil
		},
	},
	{
		env: "IDLOG_READ_DATABASE_URL", flag: "read-database-url", secret: true,
		usage: "PostgreSQL `URL` of one streaming replica of IDLOG_DATABASE_URL that answers the read-model queries; empty reads IDLOG_DATABASE_URL",
		apply: func(c *Config, v string) error {
			if err := checkURL(v, "postgres", "postgresql"); err != nil {
				return err
			}
			c.ReadDatabaseURL = v
			return nil
		},
	},
	{
		env: "IDLOG_READ_MAX_WAIT", flag: "read-max-wait", def: "250ms",
		usage: "how long a read waits for the IDLOG_READ_DATABASE_URL replica to replay the last write before it reads IDLOG_DATABASE_URL (`duration`, 1ms to 10s)",
		apply: func(c *Config, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil {
				return errors.New("want a duration such as 250ms or 1s")
			}
			if d < time.Millisecond || d > 10*time.Second {
				return errors.New("must be from 1ms to 10s")
			}
			c.ReadMaxWait = d
			return nil
		},
	},
	{
		env: "IDLOG_EVENTSTORE_URL", flag: "eventstore-url", secret: true,
		usage: "EventStoreDB `URL` (esdb://host:2113?tls=false); when set it holds the event store",
		apply: func(c *Config, v string) error {
			if err := checkURL(v, "esdb", "esdb+discover"); err != nil {
				return err
			}
			c.EventStoreURL = v
			return nil
		},
	},
	{
		env: "IDLOG_NATS_URL", flag: "nats-url", secret: true,
		usage: "NATS `URL` (nats://user:password@host:4222) for the event relay; empty means an embedded NATS server",
		apply: func(c *Config, v string) error {
			// NATS accepts a comma-separated list of servers.
			for _, u := range strings.Split(v, ",") {
				if err := checkURL(strings.TrimSpace(u), "nats", "tls", "ws", "wss"); err != nil {
					return err
				}
			}
			c.NATSURL = v
			return nil
		},
	},
	{
		env: "IDLOG_NATS_PORT", flag: "nats-port", def: "4222",
		usage: "`port` of the embedded NATS server on 127.0.0.1 (with no IDLOG_NATS_URL); 0 picks a free one, none opens no port",
		apply: func(c *Config, v string) error {
			if strings.EqualFold(v, natsNoPort) {
				c.NATSNoListen = true
				return nil
			}
			p, err := strconv.ParseUint(v, 10, 16)
			if err != nil {
				return errors.New("want a port from 0 to 65535, or none")
			}
			c.NATSPort = int(p)
			return nil
		},
	},
	{
		// Before IDLOG_NATS_MAX_AGE, which must not be shorter.
		env: "IDLOG_NATS_DUPLICATE_WINDOW", flag: "nats-duplicate-window", def: "2m",
		usage: "how long JetStream remembers event ids to drop republished events (`duration`, at least 2m)",
		apply: func(c *Config, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil {
				return errors.New("want a duration such as 2m or 10m")
			}
			if d < 2*time.Minute {
				return errors.New("must be at least 2m: a relay that restarts within it never stores an event twice")
			}
			c.NATSDuplicateWindow = d
			return nil
		},
	},
	{
		env: "IDLOG_NATS_MAX_AGE", flag: "nats-max-age", def: "0",
		usage: "how long the IDLOG_EVENTS stream keeps an event (`duration`, e.g. 720h); 0 keeps every event",
		apply: func(c *Config, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil {
				return errors.New("want a duration such as 720h, or 0")
			}
			if d < 0 || d > 0 && d < c.NATSDuplicateWindow {
				return fmt.Errorf("must be 0 or at least IDLOG_NATS_DUPLICATE_WINDOW (%v)", c.NATSDuplicateWindow)
			}
			c.NATSMaxAge = d
			return nil
		},
	},
	{
		env: "IDLOG_NATS_MAX_BYTES", flag: "nats-max-bytes", def: "0",
		usage: "most `bytes` the IDLOG_EVENTS stream keeps, the oldest events dropped first; 0 means no limit",
		apply: func(c *Config, v string) error {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				return errors.New("want a number of bytes, or 0")
			}
			c.NATSMaxBytes = n
			return nil
		},
	},
	{
		env: "IDLOG_LOG_LEVEL", flag: "log-level", def: "info",
		usage: "lowest `level` logged: debug, info, warn or error",
		apply: func(c *Config, v string) error {
			switch strings.ToLower(v) {
			case "debug":
				c.LogLevel = slog.LevelDebug
			case "info":
				c.LogLevel = slog.LevelInfo
			case "warn":
				c.LogLevel = slog.LevelWarn
			case "error":
				c.LogLevel = slog.LevelError
			default:
				return errors.New("want debug, info, warn or error")
			}
			return nil
		},
	},
	{
		env: "IDLOG_LOG_FORMAT", flag: "log-format", def: "text",
		usage: "log `format`: text or json",
		apply: func(c *Config, v string) error {
			switch v = strings.ToLower(v); v {
			case "text", "json":
				c.LogFormat = v
				return nil
			}
			return errors.New("want text or json")
		},
	},
	{
		env: "IDLOG_LOG_PERSONAL_DATA", flag: "log-personal-data", def: "true",
		usage: "log email addresses, client addresses and user agents in attributes (`bool`; false leaves them out of logs)",
		apply: func(c *Config, v string) error {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return errors.New("want true or false")
			}
			c.LogPersonalData = b
			return nil
		},
	},
	{
		env: "IDLOG_SHUTDOWN_TIMEOUT", flag: "shutdown-timeout", def: "15s",
		usage: "how long in-flight requests may take to finish on shutdown (`duration`, e.g. 15s)",
		apply: func(c *Config, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil {
				return errors.New("want a duration such as 15s or 1m")
			}
			if d <= 0 {
				return errors.New("must be positive")
			}
			c.ShutdownTimeout = d
			return nil
		},
	},
	{
		env: "IDLOG_REQUEST_TIMEOUT", flag: "request-timeout", def: "10s",
		usage: "how long a request may take before it is answered 503 server.unavailable (`duration`, e.g. 10s); PostgreSQL statement and lock timeouts follow it",
		apply: func(c *Config, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil {
				return errors.New("want a duration such as 10s or 1m")
			}
			if d < 100*time.Millisecond {
				return errors.New("must be at least 100ms")
			}
			c.RequestTimeout = d
			return nil
		},
	},
}

// Flags binds the configuration flags to a subcommand's flag set. Call Load after fs.Parse.
type Flags struct {
	fs     *flag.FlagSet
	values map[string]*string // by flag name
}

// Bind registers every configuration flag on fs. A flag's help names its environment variable.
func Bind(fs *flag.FlagSet) *Flags {
	f := &Flags{fs: fs, values: make(map[string]*string, len(settings))}
	for _, s := range settings {
		usage := fmt.Sprintf("%s (env %s)", s.usage, s.env)
		// The flag's default stays empty: a value counts only if the flag was given, so the
		// environment can fill the others. The real default is in the help text.
		if s.def != "" {
			usage += fmt.Sprintf(" (default %q)", s.def)
		}
		f.values[s.flag] = fs.String(s.flag, "", usage)
	}
	return f
}

// Load builds the configuration from the flags that were given, then the environment (read with
// getenv, usually os.Getenv; an empty variable counts as unset), then the defaults, and validates
// every value. All bad values are reported together; each error names its variable or flag and its
// value, with any password replaced.
func (f *Flags) Load(getenv func(string) string) (Config, error) {
	given := map[string]bool{}
	if f.fs.Parsed() {
		f.fs.Visit(func(fl *flag.Flag) { given[fl.Name] = true })
	}
	var (
		c    Config
		errs []error
	)
	for _, s := range settings {
		v, source := s.def, s.env
		if given[s.flag] {
			v, source = *f.values[s.flag], "-"+s.flag
		} else if ev := getenv(s.env); ev != "" {
			v = ev
		}
		if v == "" && s.def == "" {
			continue // optional and unset
		}
		if err := s.apply(&c, v); err != nil {
			if s.secret {
				v = RedactURL(v)
			}
			if s.hidden {
				v = "(hidden)"
			}
			errs = append(errs, &InvalidError{Source: source, Value: v, Reason: err.Error()})
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, err
	}
	c.NATSPortChosen = given["nats-port"] || getenv("IDLOG_NATS_PORT") != ""
	if err := checkReadDatabase(c); err != nil {
		return Config{}, err
	}
	if err := checkAccounts(&c); err != nil {
		return Config{}, err
	}
	if err := checkNATSAuth(&c); err != nil {
		return Config{}, err
	}
	return c, nil
}

// checkReadDatabase: the read replica is a standby of the database that holds the read models.
func checkReadDatabase(c Config) error {
	if c.ReadDatabaseURL == "" {
		return nil
	}
	if c.DatabaseURL == "" {
		return &InvalidError{Source: "IDLOG_READ_DATABASE_URL", Value: RedactURL(c.ReadDatabaseURL),
			Reason: "needs IDLOG_DATABASE_URL: it names a streaming replica of that PostgreSQL database, which holds the read models"}
	}
	if c.ReadDatabaseURL == c.DatabaseURL {
		return &InvalidError{Source: "IDLOG_READ_DATABASE_URL", Value: RedactURL(c.ReadDatabaseURL),
			Reason: "is IDLOG_DATABASE_URL itself: name a streaming replica of it, or leave it empty"}
	}
	return nil
}

func checkHostPort(v string) error {
	_, port, err := net.SplitHostPort(v)
	if err != nil {
		return errors.New("want host:port, e.g. 127.0.0.1:8080 or :8080")
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("port %q is not a number from 0 to 65535", port)
	}
	return nil
}

// checkURL accepts an absolute URL with one of the schemes and a host. Its errors never quote the
// URL, which may hold a password.
func checkURL(v string, schemes ...string) error {
	u, err := url.Parse(v)
	if err != nil {
		return errors.New("not a URL")
	}
	ok := false
	for _, s := range schemes {
		ok = ok || strings.EqualFold(u.Scheme, s)
	}
	if u.Scheme == "" {
		return fmt.Errorf("want a URL such as %s://host:port", schemes[0])
	}
	if !ok {
		return fmt.Errorf("scheme %q is not %s", u.Scheme, strings.Join(schemes, " or "))
	}
	if u.Host == "" {
		return errors.New("no host")
	}
	if p := u.Port(); p != "" {
		if _, err := strconv.ParseUint(p, 10, 16); err != nil {
			return fmt.Errorf("port %q is not a number from 0 to 65535", p)
		}
	}
	return nil
}
