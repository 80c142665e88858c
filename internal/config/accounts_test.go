package config_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/idlog/idlog/auth"
	"github.com/idlog/idlog/internal/config"
)

// defaultAccounts are the account settings when none is given: OWASP's argon2id costs.
var defaultAccounts = config.Accounts{
	TokenTTL: 15 * time.Minute, TokenIssuer: "idlog", TokenAudience: "idlog",
	Argon2:            auth.DefaultParams(),
	SignInMaxFailures: 5, SignInLockout: 15 * time.Minute, SignInAddressMaxFailures: 100, SignInAddressWindow: 15 * time.Minute,
	EmailTokenTTL: 24 * time.Hour, ResetTokenTTL: time.Hour, ReadYourWrites: 2 * time.Second,
	IdempotencyRetention: 24 * time.Hour,
	SessionIdleTimeout:   7 * 24 * time.Hour, SessionMaxLifetime: 30 * 24 * time.Hour,
	Gatekeeper: config.Gatekeeper{UpstreamTokenTTL: time.Minute, NonceWindow: 5 * time.Second},
}

func TestAccountSettings(t *testing.T) {
	t.Parallel()
	c, err := load(t, map[string]string{
		"IDLOG_DATA_DIR":                    "/srv/idlog",
		"IDLOG_TOKEN_TTL":                   "5m",
		"IDLOG_TOKEN_ISSUER":                "https://id.example.com",
		"IDLOG_TOKEN_AUDIENCE":              "exchange",
		"IDLOG_SIGNING_KEY_FILE":            "/run/secrets/signing.pem",
		"IDLOG_ARGON2_MEMORY":               "65536",
		"IDLOG_ARGON2_ITERATIONS":           "3",
		"IDLOG_ARGON2_PARALLELISM":          "4",
		"IDLOG_SIGNIN_MAX_FAILURES":         "0",
		"IDLOG_SIGNIN_LOCKOUT":              "1h",
		"IDLOG_SIGNIN_ADDRESS_MAX_FAILURES": "100",
		"IDLOG_SIGNIN_ADDRESS_WINDOW":       "1m",
		"IDLOG_EMAIL_TOKEN_TTL":             "48h",
		"IDLOG_RESET_TOKEN_TTL":             "30m",
		"IDLOG_READ_YOUR_WRITES_TIMEOUT":    "500ms",
		"IDLOG_IDEMPOTENCY_RETENTION":       "1h",
		"IDLOG_TRUST_FORWARDED_FOR":         "true",
	}, "-token-ttl", "10m")
	if err != nil {
		t.Fatal(err)
	}
	want := config.Accounts{
		TokenTTL: 10 * time.Minute, TokenIssuer: "https://id.example.com", TokenAudience: "exchange",
		SigningKeyFile: "/run/secrets/signing.pem",
		Argon2:         auth.Params{Memory: 65536, Iterations: 3, Parallelism: 4, SaltLength: 16, KeyLength: 32},
		SignInLockout:  time.Hour, SignInAddressMaxFailures: 100, SignInAddressWindow: time.Minute,
		EmailTokenTTL: 48 * time.Hour, ResetTokenTTL: 30 * time.Minute, ReadYourWrites: 500 * time.Millisecond,
		IdempotencyRetention: time.Hour, TrustForwardedFor: true,
		SessionIdleTimeout: 7 * 24 * time.Hour, SessionMaxLifetime: 30 * 24 * time.Hour,
		Gatekeeper: config.Gatekeeper{UpstreamTokenTTL: time.Minute, NonceWindow: 5 * time.Second},
	}
	if c.Accounts != want {
		t.Errorf("accounts = %+v\nwant %+v", c.Accounts, want)
	}
	if c.SigningKeyPath() != "/run/secrets/signing.pem" || c.SecretKeyPath() != filepath.Join("/srv/idlog", "keys", "secret.key") {
		t.Errorf("key paths = %s, %s", c.SigningKeyPath(), c.SecretKeyPath())
	}
}

func TestBadAccountSettings(t *testing.T) {
	t.Parallel()
	for env, tt := range map[string]struct{ value, want string }{
		"IDLOG_TOKEN_TTL":                   {"0s", "must be positive"},
		"IDLOG_TOKEN_AUDIENCE":              {" ", "must not be empty"},
		"IDLOG_ARGON2_MEMORY":               {"lots", "want a whole number from 8 to 1048576"},
		"IDLOG_ARGON2_ITERATIONS":           {"0", "want a whole number from 1 to 64"},
		"IDLOG_SIGNIN_ADDRESS_MAX_FAILURES": {"-1", "want a whole number"},
		"IDLOG_SIGNIN_LOCKOUT":              {"forever", "want a duration"},
		"IDLOG_TRUST_FORWARDED_FOR":         {"maybe", "want true or false"},
		"IDLOG_IDEMPOTENCY_RETENTION":       {"0s", "must be positive"},
	} {
		_, err := load(t, map[string]string{env: tt.value})
		if !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), env) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s=%s: %v, want an error naming it: %s", env, tt.value, err, tt.want)
		}
	}
	// Each value is fine alone; together they break argon2's rule of 8 KiB per lane.
	_, err := load(t, map[string]string{"IDLOG_ARGON2_MEMORY": "16", "IDLOG_ARGON2_PARALLELISM": "4"})
	if !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), "IDLOG_ARGON2_MEMORY") || !strings.Contains(err.Error(), "PARALLELISM is 4") {
		t.Errorf("memory 16 KiB with 4 lanes: %v", err)
	}
}

// Previous signing keys need the end of their grace; both are read as given.
func TestPreviousSigningKeys(t *testing.T) {
	t.Parallel()
	c, err := load(t, map[string]string{
		"IDLOG_SIGNING_KEY_PREVIOUS_FILES": "/keys/a.pem, /keys/../keys/b.pem,",
		"IDLOG_SIGNING_KEY_PREVIOUS_UNTIL": "2026-12-02T22:00:00+01:00",
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.PreviousSigningKeyPaths(); strings.Join(got, "|") != "/keys/a.pem|/keys/b.pem" {
		t.Errorf("previous key files %q", got)
	}
	if want := time.Date(2026, 12, 2, 21, 0, 0, 0, time.UTC); !c.Accounts.SigningKeyPreviousUntil.Equal(want) {
		t.Errorf("until = %v, want %v", c.Accounts.SigningKeyPreviousUntil, want)
	}
	_, err = load(t, map[string]string{"IDLOG_SIGNING_KEY_PREVIOUS_FILES": "/keys/a.pem"})
	if !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), "IDLOG_SIGNING_KEY_PREVIOUS_UNTIL") {
		t.Errorf("previous keys without an end: %v, want an error naming IDLOG_SIGNING_KEY_PREVIOUS_UNTIL", err)
	}
	_, err = load(t, map[string]string{"IDLOG_SIGNING_KEY_PREVIOUS_UNTIL": "tomorrow"})
	if err == nil || !strings.Contains(err.Error(), `invalid IDLOG_SIGNING_KEY_PREVIOUS_UNTIL "tomorrow"`) {
		t.Errorf("a bad time: %v", err)
	}
}

func TestReadYourWritesWithinTheRequestDeadline(t *testing.T) {
	t.Parallel()
	_, err := load(t, map[string]string{"IDLOG_READ_YOUR_WRITES_TIMEOUT": "5s", "IDLOG_REQUEST_TIMEOUT": "5s"})
	if !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), "shorter than IDLOG_REQUEST_TIMEOUT") {
		t.Errorf("read-your-writes as long as the request deadline: %v, want refused", err)
	}
}
