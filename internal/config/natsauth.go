package config

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// NATSAuth are the settings that secure idlog's use of NATS: how it authenticates to an external
// server (IDLOG_NATS_CREDS, IDLOG_NATS_TLS_*) and the key that signs the events it publishes.
type NATSAuth struct {
	// Credentials is a NATS credentials file (.creds, or an NKEY seed) for the server of
	// IDLOG_NATS_URL. The embedded server's users have theirs in the data directory.
	Credentials string
	// TLSCA is a PEM file of the authorities that sign the server's certificate; TLSCert and
	// TLSKey, both or neither, are a client certificate.
	TLSCA, TLSCert, TLSKey string
	// EventsSigningKeyFile holds the Ed25519 key that signs the events (PEM, PKCS#8); empty means
	// keys/events.pem in the data directory. A missing file is created with a new key.
	EventsSigningKeyFile string
}

// LogValue names the files; their content never reaches the log.
func (a NATSAuth) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("creds", a.Credentials), slog.String("tls_ca", a.TLSCA),
		slog.String("tls_cert", a.TLSCert), slog.String("tls_key", a.TLSKey),
		slog.String("events_signing_key_file", a.EventsSigningKeyFile),
	)
}

// Files inside the data directory.
var (
	keysDir                 = "keys"
	defaultEventsSigningKey = filepath.Join(keysDir, "events.pem")
	eventsKeysFile          = filepath.Join(keysDir, "events-jwks.json")
)

// NATSCredentialsDir holds the NKEY seeds of the embedded NATS server's users
// (nats-idlog.nk, nats-reader.nk, nats-mailer.nk).
func (c Config) NATSCredentialsDir() string { return filepath.Join(c.DataDir, keysDir) }

// EventsSigningKeyPath is the file of the key that signs the events.
func (c Config) EventsSigningKeyPath() string {
	if c.NATSAuth.EventsSigningKeyFile != "" {
		return c.NATSAuth.EventsSigningKeyFile
	}
	return filepath.Join(c.DataDir, defaultEventsSigningKey)
}

// EventsKeysPath is where serve writes the JWKS of the events' public key, for consumers (and
// idlog events tail) on this machine.
func (c Config) EventsKeysPath() string { return filepath.Join(c.DataDir, eventsKeysFile) }

// natsFileSetting is a file for the server of IDLOG_NATS_URL: it must exist, and makes no sense
// with the embedded server.
func natsFileSetting(env, flag, usage string, set func(a *NATSAuth, s string)) setting {
	return setting{env: env, flag: flag, usage: usage, apply: func(c *Config, v string) error {
		if c.NATSURL == "" {
			return errors.New("is for the server of IDLOG_NATS_URL, which is not set; the embedded server's credentials are in <data-dir>/keys")
		}
		if _, err := os.Stat(v); err != nil {
			return errors.New("no such file")
		}
		set(&c.NATSAuth, filepath.Clean(v))
		return nil
	}}
}

var natsAuthSettings = []setting{
	natsFileSetting("IDLOG_NATS_CREDS", "nats-creds", "NATS credentials `file` (.creds, or an NKEY seed; mode 0600) for the server of IDLOG_NATS_URL",
		func(a *NATSAuth, s string) { a.Credentials = s }),
	natsFileSetting("IDLOG_NATS_TLS_CA", "nats-tls-ca", "PEM `file` of the authorities to trust for the server of IDLOG_NATS_URL; setting it requires TLS",
		func(a *NATSAuth, s string) { a.TLSCA = s }),
	natsFileSetting("IDLOG_NATS_TLS_CERT", "nats-tls-cert", "PEM `file` of a client certificate for the server of IDLOG_NATS_URL (with IDLOG_NATS_TLS_KEY)",
		func(a *NATSAuth, s string) { a.TLSCert = s }),
	natsFileSetting("IDLOG_NATS_TLS_KEY", "nats-tls-key", "PEM `file` of the client certificate's key (with IDLOG_NATS_TLS_CERT)",
		func(a *NATSAuth, s string) { a.TLSKey = s }),
	{
		env: "IDLOG_EVENTS_SIGNING_KEY_FILE", flag: "events-signing-key-file",
		usage: "`file` of the Ed25519 key signing the events published to NATS (default <data-dir>/keys/events.pem, created if missing)",
		apply: func(c *Config, v string) error {
			if strings.TrimSpace(v) == "" {
				return errors.New("must not be empty")
			}
			c.NATSAuth.EventsSigningKeyFile = filepath.Clean(v)
			return nil
		},
	},
}

// checkNATSAuth checks what no single setting can: a client certificate comes with its key.
func checkNATSAuth(c *Config) error {
	if a := c.NATSAuth; (a.TLSCert == "") != (a.TLSKey == "") {
		return &InvalidError{Source: "IDLOG_NATS_TLS_CERT", Value: a.TLSCert, Reason: "IDLOG_NATS_TLS_CERT and IDLOG_NATS_TLS_KEY go together"}
	}
	return nil
}

func init() {
	settings = append(settings, natsAuthSettings...)
}
