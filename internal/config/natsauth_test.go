package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/idlog/idlog/internal/config"
)

func TestNATSAuthSettings(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := func(name string) string {
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	creds, ca, cert, key := file("idlog.creds"), file("ca.pem"), file("cert.pem"), file("key.pem")
	c, err := load(t, map[string]string{
		"IDLOG_NATS_URL": "tls://nats.internal:4222", "IDLOG_NATS_CREDS": creds, "IDLOG_NATS_TLS_CA": ca,
		"IDLOG_NATS_TLS_CERT": cert, "IDLOG_NATS_TLS_KEY": key, "IDLOG_EVENTS_SIGNING_KEY_FILE": "/etc/idlog/events.pem",
		"IDLOG_DATA_DIR": "/var/lib/idlog",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := config.NATSAuth{Credentials: creds, TLSCA: ca, TLSCert: cert, TLSKey: key, EventsSigningKeyFile: "/etc/idlog/events.pem"}
	if c.NATSAuth != want {
		t.Errorf("NATSAuth = %+v, want %+v", c.NATSAuth, want)
	}
	if c.EventsSigningKeyPath() != "/etc/idlog/events.pem" || c.NATSCredentialsDir() != "/var/lib/idlog/keys" || c.EventsKeysPath() != "/var/lib/idlog/keys/events-jwks.json" {
		t.Errorf("paths %s %s %s", c.EventsSigningKeyPath(), c.NATSCredentialsDir(), c.EventsKeysPath())
	}
	if c, _ := load(t, map[string]string{"IDLOG_DATA_DIR": "/d"}); c.EventsSigningKeyPath() != "/d/keys/events.pem" {
		t.Errorf("default events signing key %s, want /d/keys/events.pem", c.EventsSigningKeyPath())
	}

	for _, tt := range []struct {
		env     map[string]string
		wantMsg string
	}{
		{map[string]string{"IDLOG_NATS_CREDS": creds}, `invalid IDLOG_NATS_CREDS "` + creds + `": is for the server of IDLOG_NATS_URL, which is not set`},
		{map[string]string{"IDLOG_NATS_URL": "nats://n:4222", "IDLOG_NATS_TLS_CA": filepath.Join(dir, "missing.pem")}, `invalid IDLOG_NATS_TLS_CA`},
		{map[string]string{"IDLOG_NATS_URL": "nats://n:4222", "IDLOG_NATS_TLS_CERT": cert}, `IDLOG_NATS_TLS_CERT and IDLOG_NATS_TLS_KEY go together`},
		{map[string]string{"IDLOG_NATS_URL": "nats://n:4222", "IDLOG_NATS_TLS_KEY": key}, `IDLOG_NATS_TLS_CERT and IDLOG_NATS_TLS_KEY go together`},
		{map[string]string{"IDLOG_EVENTS_SIGNING_KEY_FILE": " "}, `invalid IDLOG_EVENTS_SIGNING_KEY_FILE " ": must not be empty`},
	} {
		_, err := load(t, tt.env)
		if !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), tt.wantMsg) {
			t.Errorf("load(%v) = %v, want ErrInvalid saying %q", tt.env, err, tt.wantMsg)
		}
	}
}
