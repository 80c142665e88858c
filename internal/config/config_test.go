package config_test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/idlog/idlog/internal/config"
)

// load parses args as a subcommand's flags and loads the configuration from env.
func load(t *testing.T, env map[string]string, args ...string) (config.Config, error) {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f := config.Bind(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parse flags %q: %v", args, err)
	}
	return f.Load(func(k string) string { return env[k] })
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	c, err := load(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := config.Config{
		HTTPAddr:            "127.0.0.1:8080",
		DataDir:             "idlog-data",
		NATSPort:            4222,
		NATSDuplicateWindow: 2 * time.Minute,
		LogLevel:            slog.LevelInfo,
		LogFormat:           "text",
		LogPersonalData:     true,
		ShutdownTimeout:     15 * time.Second,
		RequestTimeout:      10 * time.Second,
		ReadMaxWait:         250 * time.Millisecond,
		Accounts:            defaultAccounts,
	}
	if c != want {
		t.Errorf("defaults = %+v, want %+v", c, want)
	}
	if got := c.EventStore(); got != config.SQLite {
		t.Errorf("event store = %s, want sqlite", got)
	}
	if got, want := c.SQLitePath(), filepath.Join("idlog-data", "idlog.db"); got != want {
		t.Errorf("SQLitePath = %q, want %q", got, want)
	}
	if got, want := c.NATSStoreDir(), filepath.Join("idlog-data", "nats"); got != want {
		t.Errorf("NATSStoreDir = %q, want %q", got, want)
	}
}

func TestNATSSettings(t *testing.T) {
	t.Parallel()
	c, err := load(t, map[string]string{
		"IDLOG_NATS_PORT": "none", "IDLOG_NATS_DUPLICATE_WINDOW": "5m",
		"IDLOG_NATS_MAX_AGE": "720h", "IDLOG_NATS_MAX_BYTES": "1073741824",
	})
	if err != nil {
		t.Fatal(err)
	}
	if !c.NATSNoListen || c.NATSDuplicateWindow != 5*time.Minute || c.NATSMaxAge != 720*time.Hour || c.NATSMaxBytes != 1<<30 {
		t.Errorf("config = %+v, want no port, a 5m window, 720h and 1 GiB", c)
	}
	c, err = load(t, nil, "-nats-port", "0")
	if err != nil {
		t.Fatal(err)
	}
	if c.NATSNoListen || c.NATSPort != 0 {
		t.Errorf("config = %+v, want port 0 (any free port)", c)
	}
}

func TestGoodValues(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"IDLOG_HTTP_ADDR":         ":0",
		"IDLOG_DATA_DIR":          "/var/lib/idlog/",
		"IDLOG_DATABASE_URL":      "postgres://idlog:pw@db:5432/idlog?sslmode=disable",
		"IDLOG_NATS_URL":          "nats://n1:4222, nats://n2:4222",
		"IDLOG_LOG_LEVEL":         "DEBUG",
		"IDLOG_LOG_FORMAT":        "json",
		"IDLOG_SHUTDOWN_TIMEOUT":  "1m30s",
		"IDLOG_REQUEST_TIMEOUT":   "3s",
		"IDLOG_LOG_PERSONAL_DATA": "false",
	}
	c, err := load(t, env)
	if err != nil {
		t.Fatal(err)
	}
	want := config.Config{
		HTTPAddr:            ":0",
		DataDir:             "/var/lib/idlog",
		DatabaseURL:         env["IDLOG_DATABASE_URL"],
		NATSURL:             env["IDLOG_NATS_URL"],
		NATSPort:            4222,
		NATSDuplicateWindow: 2 * time.Minute,
		LogLevel:            slog.LevelDebug,
		LogFormat:           "json",
		ShutdownTimeout:     90 * time.Second,
		RequestTimeout:      3 * time.Second,
		ReadMaxWait:         250 * time.Millisecond,
		Accounts:            defaultAccounts,
	}
	if c != want {
		t.Errorf("config = %+v, want %+v", c, want)
	}
	if got := c.EventStore(); got != config.Postgres {
		t.Errorf("event store = %s, want postgres", got)
	}

	env["IDLOG_EVENTSTORE_URL"] = "esdb://admin:changeit@es:2113?tls=false"
	c, err = load(t, env)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.EventStore(); got != config.EventStoreDB {
		t.Errorf("event store with both URLs = %s, want eventstoredb", got)
	}
}

// The read replica is a standby of IDLOG_DATABASE_URL: without that database, or naming that very
// database, the setting is refused with a message that says what to set.
func TestReadDatabase(t *testing.T) {
	t.Parallel()
	primary := "postgres://idlog:pw@db:5432/idlog?sslmode=disable"
	replica := "postgres://idlog:secret-pw@standby:5432/idlog?sslmode=disable"
	c, err := load(t, map[string]string{"IDLOG_DATABASE_URL": primary, "IDLOG_READ_DATABASE_URL": replica, "IDLOG_READ_MAX_WAIT": "1s"})
	if err != nil {
		t.Fatal(err)
	}
	if c.ReadDatabaseURL != replica || c.ReadMaxWait != time.Second {
		t.Errorf("config = %+v, want the replica and a 1s wait", c)
	}
	if err := c.RedactError(errors.New("dial " + replica)); strings.Contains(err.Error(), "secret-pw") {
		t.Errorf("RedactError kept the replica's password: %v", err)
	}
	for _, tt := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"IDLOG_READ_DATABASE_URL": replica}, "needs IDLOG_DATABASE_URL"},
		{map[string]string{"IDLOG_DATABASE_URL": primary, "IDLOG_READ_DATABASE_URL": primary}, "is IDLOG_DATABASE_URL itself"},
	} {
		_, err := load(t, tt.env)
		if !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "IDLOG_READ_DATABASE_URL") {
			t.Errorf("load(%v) = %v, want ErrInvalid naming IDLOG_READ_DATABASE_URL: %s", tt.env, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), "secret-pw") {
			t.Errorf("the error shows the password: %v", err)
		}
	}
}

func TestFlagWinsOverEnvironment(t *testing.T) {
	t.Parallel()
	env := map[string]string{"IDLOG_HTTP_ADDR": "127.0.0.1:1", "IDLOG_LOG_LEVEL": "error"}
	c, err := load(t, env, "-http-addr", "127.0.0.1:2")
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != "127.0.0.1:2" {
		t.Errorf("HTTPAddr = %q, want the flag's 127.0.0.1:2", c.HTTPAddr)
	}
	if c.LogLevel != slog.LevelError {
		t.Errorf("LogLevel = %v, want the environment's ERROR", c.LogLevel)
	}
}

// An empty variable is unset: compose files and shells often export VAR= to mean "nothing".
func TestEmptyVariableIsUnset(t *testing.T) {
	t.Parallel()
	c, err := load(t, map[string]string{"IDLOG_HTTP_ADDR": "", "IDLOG_DATABASE_URL": ""})
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != "127.0.0.1:8080" || c.EventStore() != config.SQLite {
		t.Errorf("config = %+v, want the defaults", c)
	}
}

func TestBadValues(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, env, value string
		flag             string // when set, the value is given by this flag instead
		wantMsg          string
	}{
		{env: "IDLOG_HTTP_ADDR", value: "x", wantMsg: `invalid IDLOG_HTTP_ADDR "x": want host:port`},
		{env: "IDLOG_HTTP_ADDR", value: "127.0.0.1:http", wantMsg: `invalid IDLOG_HTTP_ADDR "127.0.0.1:http": port "http"`},
		{env: "IDLOG_HTTP_ADDR", value: ":65536", wantMsg: `invalid IDLOG_HTTP_ADDR ":65536"`},
		{env: "IDLOG_HTTP_ADDR", value: "x", flag: "http-addr", wantMsg: `invalid -http-addr "x"`},
		{env: "IDLOG_DATA_DIR", value: " ", wantMsg: `invalid IDLOG_DATA_DIR " ": must not be empty`},
		{env: "IDLOG_DATA_DIR", value: "", flag: "data-dir", wantMsg: `invalid -data-dir "": must not be empty`},
		{env: "IDLOG_DATABASE_URL", value: "mysql://db/idlog", wantMsg: `invalid IDLOG_DATABASE_URL "mysql://db/idlog": scheme "mysql" is not postgres or postgresql`},
		{env: "IDLOG_DATABASE_URL", value: "postgres:///idlog", wantMsg: `invalid IDLOG_DATABASE_URL "postgres:///idlog": no host`},
		{env: "IDLOG_DATABASE_URL", value: "dbname=idlog", wantMsg: `invalid IDLOG_DATABASE_URL "dbname=idlog": want a URL`},
		{env: "IDLOG_EVENTSTORE_URL", value: "http://es:2113", wantMsg: `invalid IDLOG_EVENTSTORE_URL "http://es:2113": scheme "http" is not esdb or esdb+discover`},
		{env: "IDLOG_NATS_URL", value: "nats://a:4222,http://b", wantMsg: `invalid IDLOG_NATS_URL "nats://a:4222,http://b": scheme "http"`},
		{env: "IDLOG_NATS_PORT", value: "nats", wantMsg: `invalid IDLOG_NATS_PORT "nats": want a port from 0 to 65535, or none`},
		{env: "IDLOG_NATS_PORT", value: "65536", wantMsg: `invalid IDLOG_NATS_PORT "65536"`},
		{env: "IDLOG_NATS_DUPLICATE_WINDOW", value: "1m", wantMsg: `invalid IDLOG_NATS_DUPLICATE_WINDOW "1m": must be at least 2m`},
		{env: "IDLOG_NATS_MAX_AGE", value: "1m", wantMsg: `invalid IDLOG_NATS_MAX_AGE "1m": must be 0 or at least IDLOG_NATS_DUPLICATE_WINDOW (2m0s)`},
		{env: "IDLOG_NATS_MAX_AGE", value: "30", wantMsg: `invalid IDLOG_NATS_MAX_AGE "30": want a duration`},
		{env: "IDLOG_NATS_MAX_BYTES", value: "-1", wantMsg: `invalid IDLOG_NATS_MAX_BYTES "-1": want a number of bytes, or 0`},
		{env: "IDLOG_LOG_LEVEL", value: "verbose", wantMsg: `invalid IDLOG_LOG_LEVEL "verbose": want debug, info, warn or error`},
		{env: "IDLOG_LOG_FORMAT", value: "xml", wantMsg: `invalid IDLOG_LOG_FORMAT "xml": want text or json`},
		{env: "IDLOG_SHUTDOWN_TIMEOUT", value: "10", wantMsg: `invalid IDLOG_SHUTDOWN_TIMEOUT "10": want a duration`},
		{env: "IDLOG_SHUTDOWN_TIMEOUT", value: "-1s", wantMsg: `invalid IDLOG_SHUTDOWN_TIMEOUT "-1s": must be positive`},
		{env: "IDLOG_SHUTDOWN_TIMEOUT", value: "0s", flag: "shutdown-timeout", wantMsg: `invalid -shutdown-timeout "0s": must be positive`},
		{env: "IDLOG_LOG_PERSONAL_DATA", value: "maybe", wantMsg: `invalid IDLOG_LOG_PERSONAL_DATA "maybe": want true or false`},
		{env: "IDLOG_REQUEST_TIMEOUT", value: "10", wantMsg: `invalid IDLOG_REQUEST_TIMEOUT "10": want a duration`},
		{env: "IDLOG_READ_DATABASE_URL", value: "mysql://replica/idlog", wantMsg: `invalid IDLOG_READ_DATABASE_URL "mysql://replica/idlog": scheme "mysql" is not postgres or postgresql`},
		{env: "IDLOG_READ_MAX_WAIT", value: "0s", wantMsg: `invalid IDLOG_READ_MAX_WAIT "0s": must be from 1ms to 10s`},
		{env: "IDLOG_READ_MAX_WAIT", value: "soon", flag: "read-max-wait", wantMsg: `invalid -read-max-wait "soon": want a duration`},
		{env: "IDLOG_REQUEST_TIMEOUT", value: "1ms", wantMsg: `invalid IDLOG_REQUEST_TIMEOUT "1ms": must be at least 100ms`},
	}
	for _, tt := range tests {
		t.Run(tt.env+"="+tt.value+"/"+tt.flag, func(t *testing.T) {
			t.Parallel()
			var (
				env  = map[string]string{}
				args []string
			)
			if tt.flag != "" {
				args = []string{"-" + tt.flag + "=" + tt.value}
			} else {
				env[tt.env] = tt.value
			}
			_, err := load(t, env, args...)
			if !errors.Is(err, config.ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("err = %q, want it to contain %q", err, tt.wantMsg)
			}
			var ie *config.InvalidError
			wantSource := tt.env
			if tt.flag != "" {
				wantSource = "-" + tt.flag
			}
			if !errors.As(err, &ie) || ie.Source != wantSource || ie.Value != tt.value {
				t.Errorf("err = %#v, want an *InvalidError from %s with value %q", ie, wantSource, tt.value)
			}
		})
	}
}

func TestAllBadValuesReportedTogether(t *testing.T) {
	t.Parallel()
	_, err := load(t, map[string]string{"IDLOG_LOG_LEVEL": "loud", "IDLOG_LOG_FORMAT": "xml"})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"IDLOG_LOG_LEVEL", "IDLOG_LOG_FORMAT"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("err = %q, want it to name %s", err, want)
		}
	}
}

// A bad URL is quoted in the error, but never with its password.
func TestBadURLNeverShowsPassword(t *testing.T) {
	t.Parallel()
	const secret = "s3cr%3Et@x"
	tests := []struct{ env, value string }{
		{"IDLOG_DATABASE_URL", "postgres://idlog:" + secret + "@db:notaport/idlog"},
		{"IDLOG_DATABASE_URL", "mysql://idlog:" + secret + "@db/idlog"},
		{"IDLOG_DATABASE_URL", "postgres://idlog:" + secret + "@/idlog"},
		{"IDLOG_DATABASE_URL", "postgres://idlog:" + secret + "@db/%zz"}, // does not parse
		{"IDLOG_DATABASE_URL", "host=db user=idlog password=" + secret + " dbname=idlog"},
		{"IDLOG_DATABASE_URL", "host=db password='" + secret + "' dbname=idlog"},
		{"IDLOG_DATABASE_URL", "postgresql://db:x/idlog?user=idlog&password=" + secret},
		{"IDLOG_EVENTSTORE_URL", "https://admin:" + secret + "@es:2113"},
		{"IDLOG_NATS_URL", "nats://" + secret + "@nats:x"}, // a token
		{"IDLOG_NATS_URL", "nats://ok:4222,nats://u:" + secret + "@n2:x"},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			t.Parallel()
			_, err := load(t, map[string]string{tt.env: tt.value})
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			if !strings.Contains(msg, "invalid "+tt.env) {
				t.Errorf("err = %q, want it to name %s", msg, tt.env)
			}
			for _, part := range []string{"s3cr", "%3Et", "s3cr>t"} {
				if strings.Contains(msg, part) {
					t.Errorf("err = %q shows the password", msg)
				}
			}
			if !strings.Contains(msg, "xxxxx") {
				t.Errorf("err = %q, want the password shown as xxxxx", msg)
			}
		})
	}
}

func TestRedactURL(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"", ""},
		{"postgres://db:5432/idlog", "postgres://db:5432/idlog"},
		{"postgres://idlog@db/idlog", "postgres://idlog@db/idlog"},
		{"postgres://idlog:pw@db/idlog?sslmode=disable", "postgres://idlog:xxxxx@db/idlog?sslmode=disable"},
		{"postgres://idlog:p@ss/w@db/idlog", "postgres://idlog:xxxxx@db/idlog"},
		{"postgres://db/idlog?password=pw&sslmode=disable", "postgres://db/idlog?password=xxxxx&sslmode=disable"},
		{"host=db password=pw user=idlog", "host=db password=xxxxx user=idlog"},
		{"esdb://admin:changeit@es:2113?tls=false", "esdb://admin:xxxxx@es:2113?tls=false"},
		{"nats://token@n1:4222,nats://u:pw@n2:4222", "nats://xxxxx@n1:4222,nats://u:xxxxx@n2:4222"},
		{"dial postgres://u:pw@db/x: refused", "dial postgres://u:xxxxx@db/x: refused"},
	}
	for _, tt := range tests {
		if got := config.RedactURL(tt.in); got != tt.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestRedactError(t *testing.T) {
	t.Parallel()
	c, err := load(t, map[string]string{
		"IDLOG_DATABASE_URL":   "postgres://idlog:p%40ss@db/idlog",
		"IDLOG_EVENTSTORE_URL": "esdb://admin:changeit@es:2113",
	})
	if err != nil {
		t.Fatal(err)
	}
	sentinel := errors.New("refused")
	// A library that echoes the decoded password and a connection string.
	leaky := fmt.Errorf("connect as idlog with p@ss to esdb://admin:changeit@es:2113: %w", sentinel)
	got := c.RedactError(leaky)
	if msg := got.Error(); strings.Contains(msg, "p@ss") || strings.Contains(msg, "changeit") {
		t.Errorf("RedactError = %q, still shows a password", msg)
	}
	if !errors.Is(got, sentinel) {
		t.Error("RedactError lost the error chain")
	}
	if c.RedactError(nil) != nil {
		t.Error("RedactError(nil) != nil")
	}
	clean := errors.New("no secret here")
	if c.RedactError(clean) != clean {
		t.Error("RedactError changed an error without secrets")
	}
}

func TestLogValueHidesPasswords(t *testing.T) {
	t.Parallel()
	c, err := load(t, map[string]string{
		"IDLOG_DATABASE_URL":      "postgres://idlog:hunter2@db/idlog",
		"IDLOG_READ_DATABASE_URL": "postgres://idlog:r3plica@standby/idlog",
		"IDLOG_NATS_URL":          "nats://tok3n@nats:4222",
	})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("starting", "config", c)
	out := buf.String()
	if strings.Contains(out, "hunter2") || strings.Contains(out, "tok3n") || strings.Contains(out, "r3plica") {
		t.Errorf("log shows a secret: %s", out)
	}
	if !strings.Contains(out, `"database_url":"postgres://idlog:xxxxx@db/idlog"`) {
		t.Errorf("log lacks the redacted database URL: %s", out)
	}
	if !strings.Contains(out, `"read_database_url":"postgres://idlog:xxxxx@standby/idlog"`) {
		t.Errorf("log lacks the redacted read database URL: %s", out)
	}
}
