package config

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/idlog/idlog/auth"
	"github.com/idlog/idlog/domain"
)

// Accounts are the settings of sign-up, sign-in and access tokens (IDLOG_TOKEN_*, IDLOG_ARGON2_*,
// IDLOG_SIGNIN_*, ...).
type Accounts struct {
	// TokenTTL is the lifetime of an access token, and of the session it opens.
	TokenTTL time.Duration
	// TokenIssuer and TokenAudience are the iss and aud of access tokens.
	TokenIssuer, TokenAudience string
	// SigningKeyFile holds the Ed25519 key that signs access tokens (PEM, PKCS#8); empty means
	// keys/signing.pem in the data directory. A missing file is created with a new key.
	SigningKeyFile string
	// SigningKeyPreviousFiles lists, comma-separated, the PEM files of earlier signing keys (their
	// private or public keys): after a rotation their tokens stay valid, and they stay in the
	// JWKS, until SigningKeyPreviousUntil, which is required with them.
	SigningKeyPreviousFiles string
	SigningKeyPreviousUntil time.Time
	// SecretKeyFile holds the AES-256 key that seals TOTP secrets (base64); empty means
	// keys/secret.key in the data directory. A missing file is created with a new key.
	SecretKeyFile string
	// Argon2 are the password hashing costs (OWASP's by default).
	Argon2 auth.Params
	// SignInMaxFailures failed sign-ins of one login are free, then each waits longer, up to one
	// per SignInLockout (progressive delay, commands.SignInConfig); 0 never slows them.
	SignInMaxFailures int
	SignInLockout     time.Duration
	// SignInAddressMaxFailures failed sign-ins from one address block its sign-ins at logins not
	// known there until SignInAddressWindow has passed since the last; 0 never does.
	SignInAddressMaxFailures int
	SignInAddressWindow      time.Duration
	// EmailTokenTTL and ResetTokenTTL are how long email confirmation and password reset tokens
	// are valid.
	EmailTokenTTL, ResetTokenTTL time.Duration
	// ReadYourWrites bounds how long an answer waits for the read models to show its change.
	ReadYourWrites time.Duration
	// IdempotencyRetention is how long the first answer to a request with an Idempotency-Key is
	// kept and replayed to its retries.
	IdempotencyRetention time.Duration
	// TrustForwardedFor takes a client's address from X-Forwarded-For (set it behind a proxy only).
	TrustForwardedFor bool
	// SignupBonus is how many free coins a new user gets, as commands.WalletConfig reads it: 0
	// (unset) means the default, 100; IDLOG_SIGNUP_BONUS=0 grants none and is kept as -1.
	SignupBonus int64
	// Levels is the level ladder as IDLOG_LEVELS gives it ("email=verified,phone=verified,...",
	// checked by domain.ParseLevels); empty means Barong's ladder, domain.DefaultLevels.
	Levels string
	// MaxSessions and SnapshotEvery: see sessions.go.
	MaxSessions, SnapshotEvery int
	// EraseOnDelete: a user's own deletion erases their personal data too (erasure.go).
	EraseOnDelete bool
	// SessionIdleTimeout and SessionMaxLifetime: how long a session lasts unrenewed, and at most
	// (commands.SessionsConfig).
	SessionIdleTimeout, SessionMaxLifetime time.Duration
	// SessionCookies opens cookie sessions by default; SecureCookies marks them Secure always.
	SessionCookies, SecureCookies bool
	// CORSOrigins are the browser origins allowed to call with credentials, comma-separated and
	// checked (CORSOriginList splits them); a string keeps Accounts comparable.
	CORSOrigins string
	// Gatekeeper: the gateway's authz endpoint and API keys; see gatekeeper.go.
	Gatekeeper Gatekeeper
}

// CORSOriginList is CORSOrigins, one origin an element; nil if none.
func (a Accounts) CORSOriginList() []string {
	if a.CORSOrigins == "" {
		return nil
	}
	return strings.Split(a.CORSOrigins, ",")
}

// Key files inside the data directory, by default.
var (
	defaultSigningKeyFile = filepath.Join("keys", "signing.pem")
	defaultSecretKeyFile  = filepath.Join("keys", "secret.key")
)

// SigningKeyPath is the file of the token signing key.
func (c Config) SigningKeyPath() string {
	if c.Accounts.SigningKeyFile != "" {
		return c.Accounts.SigningKeyFile
	}
	return filepath.Join(c.DataDir, defaultSigningKeyFile)
}

// PreviousSigningKeyPaths are the files of earlier signing keys, still accepted until
// Accounts.SigningKeyPreviousUntil.
func (c Config) PreviousSigningKeyPaths() []string {
	var paths []string
	for _, p := range strings.Split(c.Accounts.SigningKeyPreviousFiles, ",") {
		if p = strings.TrimSpace(p); p != "" {
			paths = append(paths, filepath.Clean(p))
		}
	}
	return paths
}

// SecretKeyPath is the file of the key that seals stored secrets.
func (c Config) SecretKeyPath() string {
	if c.Accounts.SecretKeyFile != "" {
		return c.Accounts.SecretKeyFile
	}
	return filepath.Join(c.DataDir, defaultSecretKeyFile)
}

// LogValue logs the settings; they hold no secret (the keys are files, named by path only).
func (a Accounts) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Duration("token_ttl", a.TokenTTL),
		slog.String("token_issuer", a.TokenIssuer),
		slog.String("token_audience", a.TokenAudience),
		slog.String("signing_key_file", a.SigningKeyFile),
		slog.String("signing_key_previous_files", a.SigningKeyPreviousFiles),
		slog.Time("signing_key_previous_until", a.SigningKeyPreviousUntil),
		slog.String("secret_key_file", a.SecretKeyFile),
		slog.String("argon2", fmt.Sprintf("m=%d,t=%d,p=%d", a.Argon2.Memory, a.Argon2.Iterations, a.Argon2.Parallelism)),
		slog.Int("signin_max_failures", a.SignInMaxFailures),
		slog.Duration("signin_lockout", a.SignInLockout),
		slog.Int("signin_address_max_failures", a.SignInAddressMaxFailures),
		slog.Duration("signin_address_window", a.SignInAddressWindow),
		slog.Duration("email_token_ttl", a.EmailTokenTTL),
		slog.Duration("reset_token_ttl", a.ResetTokenTTL),
		slog.Duration("read_your_writes", a.ReadYourWrites),
		slog.Duration("idempotency_retention", a.IdempotencyRetention),
		slog.Bool("trust_forwarded_for", a.TrustForwardedFor),
		// What applies, not how it is kept: unset means the commands' defaults.
		slog.Int64("signup_bonus", a.EffectiveSignupBonus()),
		slog.String("levels", a.EffectiveLevels()),
		slog.Int("max_sessions", a.MaxSessions),
		slog.Int("snapshot_every", a.SnapshotEvery),
		slog.Bool("erase_on_delete", a.EraseOnDelete),
		slog.Duration("session_idle_timeout", a.SessionIdleTimeout),
		slog.Duration("session_max_lifetime", a.SessionMaxLifetime),
		slog.Bool("session_cookies", a.SessionCookies),
		slog.Bool("secure_cookies", a.SecureCookies),
		slog.String("cors_origins", a.CORSOrigins),
		slog.Any("gatekeeper", a.Gatekeeper),
	)
}

// positiveDuration parses a duration above zero.
func positiveDuration(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, errors.New("want a duration such as 15m or 2s")
	}
	if d <= 0 {
		return 0, errors.New("must be positive")
	}
	return d, nil
}

// intIn parses an integer from lo to hi.
func intIn(v string, lo, hi int) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("want a whole number from %d to %d", lo, hi)
	}
	return n, nil
}

func durationSetting(env, flag, def, usage string, set func(a *Accounts, d time.Duration)) setting {
	return setting{env: env, flag: flag, def: def, usage: usage, apply: func(c *Config, v string) error {
		d, err := positiveDuration(v)
		if err != nil {
			return err
		}
		set(&c.Accounts, d)
		return nil
	}}
}

func intSetting(env, flag, def, usage string, lo, hi int, set func(a *Accounts, n int)) setting {
	return setting{env: env, flag: flag, def: def, usage: usage, apply: func(c *Config, v string) error {
		n, err := intIn(v, lo, hi)
		if err != nil {
			return err
		}
		set(&c.Accounts, n)
		return nil
	}}
}

func stringSetting(env, flag, def, usage string, set func(a *Accounts, s string)) setting {
	return setting{env: env, flag: flag, def: def, usage: usage, apply: func(c *Config, v string) error {
		if strings.TrimSpace(v) == "" {
			return errors.New("must not be empty")
		}
		set(&c.Accounts, v)
		return nil
	}}
}

// accountSettings come after the others, so their errors are listed after them.
var accountSettings = []setting{
	durationSetting("IDLOG_TOKEN_TTL", "token-ttl", "15m", "lifetime of an access token; its session lasts longer, renewed by refresh tokens (`duration`)",
		func(a *Accounts, d time.Duration) { a.TokenTTL = d }),
	stringSetting("IDLOG_TOKEN_ISSUER", "token-issuer", "idlog", "`iss` claim of access tokens",
		func(a *Accounts, s string) { a.TokenIssuer = s }),
	stringSetting("IDLOG_TOKEN_AUDIENCE", "token-audience", "idlog", "`aud` claim of access tokens",
		func(a *Accounts, s string) { a.TokenAudience = s }),
	stringSetting("IDLOG_SIGNING_KEY_FILE", "signing-key-file", "", "`file` of the Ed25519 key signing access tokens (default <data-dir>/keys/signing.pem, created if missing)",
		func(a *Accounts, s string) { a.SigningKeyFile = filepath.Clean(s) }),
	stringSetting("IDLOG_SIGNING_KEY_PREVIOUS_FILES", "signing-key-previous-files", "", "comma-separated PEM `files` of earlier signing keys, still accepted after a rotation until IDLOG_SIGNING_KEY_PREVIOUS_UNTIL",
		func(a *Accounts, s string) { a.SigningKeyPreviousFiles = s }),
	{
		env: "IDLOG_SIGNING_KEY_PREVIOUS_UNTIL", flag: "signing-key-previous-until",
		usage: "`time` (RFC 3339) until which the keys of IDLOG_SIGNING_KEY_PREVIOUS_FILES verify tokens: the rotation time plus the token TTL",
		apply: func(c *Config, v string) error {
			t, err := time.Parse(time.RFC3339, strings.TrimSpace(v))
			if err != nil {
				return errors.New("want an RFC 3339 time such as 2026-12-02T21:30:00Z")
			}
			c.Accounts.SigningKeyPreviousUntil = t.UTC()
			return nil
		},
	},
	stringSetting("IDLOG_SECRET_KEY_FILE", "secret-key-file", "", "`file` of the AES-256 key sealing TOTP secrets (default <data-dir>/keys/secret.key, created if missing)",
		func(a *Accounts, s string) { a.SecretKeyFile = filepath.Clean(s) }),
	intSetting("IDLOG_ARGON2_MEMORY", "argon2-memory", "19456", "argon2id memory per password hash in `KiB` (OWASP: 19456)", 8, 1<<20,
		func(a *Accounts, n int) { a.Argon2.Memory = uint32(n) }),
	intSetting("IDLOG_ARGON2_ITERATIONS", "argon2-iterations", "2", "argon2id passes per password hash (`n`, OWASP: 2)", 1, 64,
		func(a *Accounts, n int) { a.Argon2.Iterations = uint32(n) }),
	intSetting("IDLOG_ARGON2_PARALLELISM", "argon2-parallelism", "1", "argon2id lanes per password hash (`n`, OWASP: 1)", 1, 255,
		func(a *Accounts, n int) { a.Argon2.Parallelism = uint8(n) }),
	intSetting("IDLOG_SIGNIN_MAX_FAILURES", "signin-max-failures", "5", "failed sign-ins of one login before each further one must wait (`n`; 0: never)", 0, 1000,
		func(a *Accounts, n int) { a.SignInMaxFailures = n }),
	durationSetting("IDLOG_SIGNIN_LOCKOUT", "signin-lockout", "15m", "longest wait between failed sign-ins of one login: one guess per this, in the long run (`duration`)",
		func(a *Accounts, d time.Duration) { a.SignInLockout = d }),
	intSetting("IDLOG_SIGNIN_ADDRESS_MAX_FAILURES", "signin-address-max-failures", "100", "failed sign-ins from one address, whatever the login, that block it for the window (`n`; 0: never)", 0, 1000000,
		func(a *Accounts, n int) { a.SignInAddressMaxFailures = n }),
	durationSetting("IDLOG_SIGNIN_ADDRESS_WINDOW", "signin-address-window", "15m", "window of IDLOG_SIGNIN_ADDRESS_MAX_FAILURES (`duration`)",
		func(a *Accounts, d time.Duration) { a.SignInAddressWindow = d }),
	durationSetting("IDLOG_EMAIL_TOKEN_TTL", "email-token-ttl", "24h", "how long an email confirmation token is valid (`duration`)",
		func(a *Accounts, d time.Duration) { a.EmailTokenTTL = d }),
	durationSetting("IDLOG_RESET_TOKEN_TTL", "reset-token-ttl", "1h", "how long a password reset token is valid (`duration`)",
		func(a *Accounts, d time.Duration) { a.ResetTokenTTL = d }),
	durationSetting("IDLOG_READ_YOUR_WRITES_TIMEOUT", "read-your-writes-timeout", "2s", "how long an answer waits for the read models to show its change (`duration`)",
		func(a *Accounts, d time.Duration) { a.ReadYourWrites = d }),
	durationSetting("IDLOG_IDEMPOTENCY_RETENTION", "idempotency-retention", "24h", "how long the first answer to a request with an Idempotency-Key is kept for its retries (`duration`)",
		func(a *Accounts, d time.Duration) { a.IdempotencyRetention = d }),
	{
		env: "IDLOG_TRUST_FORWARDED_FOR", flag: "trust-forwarded-for", def: "false",
		usage: "take client addresses from X-Forwarded-For (`bool`; only behind a proxy that sets it)",
		apply: func(c *Config, v string) error {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return errors.New("want true or false")
			}
			c.Accounts.TrustForwardedFor = b
			return nil
		},
	},
}

// DefaultSignupBonus is commands.DefaultSignupBonus (a test in cmd/idlog keeps them equal; config
// does not import commands).
const DefaultSignupBonus = 100

// EffectiveSignupBonus is the bonus new users get: SignupBonus with its encoding undone.
func (a Accounts) EffectiveSignupBonus() int64 {
	switch a.SignupBonus {
	case 0:
		return DefaultSignupBonus
	case -1:
		return 0
	}
	return a.SignupBonus
}

// EffectiveLevels is the ladder in force: Levels, or the default one when it is empty.
func (a Accounts) EffectiveLevels() string {
	if a.Levels == "" {
		return domain.DefaultLevels().String()
	}
	return a.Levels
}

// labelWalletSettings are the sign-up bonus and the level ladder. Their defaults are left to the
// commands (empty here), so that an unset variable keeps the zero value.
var labelWalletSettings = []setting{
	{
		env: "IDLOG_SIGNUP_BONUS", flag: "signup-bonus",
		usage: "free coins credited to a new user (`n`; 0: none; default 100)",
		apply: func(c *Config, v string) error {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil || n < 0 || n > domain.MaxCoins {
				return fmt.Errorf("want a whole number from 0 to %d", int64(domain.MaxCoins))
			}
			if n == 0 {
				n = -1 // commands.NoSignupBonus: the commands read 0 as "the default"
			}
			c.Accounts.SignupBonus = n
			return nil
		},
	},
	{
		env: "IDLOG_LEVELS", flag: "levels",
		usage: "label each level requires, lowest first (`key=value,...`; default email=verified,phone=verified,document=verified)",
		apply: func(c *Config, v string) error {
			l, err := domain.ParseLevels(v)
			if err != nil {
				return err
			}
			c.Accounts.Levels = l.String()
			return nil
		},
	},
}

// checkAccounts checks what no single setting can: the argon2 parameters together, and previous
// signing keys with the end of their grace.
func checkAccounts(c *Config) error {
	if c.RequestTimeout > 0 && c.Accounts.ReadYourWrites >= c.RequestTimeout {
		// The wait happens after the change is stored: a deadline inside it would answer 503 to
		// a change that took effect.
		return &InvalidError{
			Source: "IDLOG_READ_YOUR_WRITES_TIMEOUT", Value: c.Accounts.ReadYourWrites.String(),
			Reason: fmt.Sprintf("must be shorter than IDLOG_REQUEST_TIMEOUT (%v)", c.RequestTimeout),
		}
	}
	if len(c.PreviousSigningKeyPaths()) > 0 && c.Accounts.SigningKeyPreviousUntil.IsZero() {
		return &InvalidError{
			Source: "IDLOG_SIGNING_KEY_PREVIOUS_UNTIL", Value: "",
			Reason: "required with IDLOG_SIGNING_KEY_PREVIOUS_FILES: previous keys must not verify tokens for ever",
		}
	}
	if err := checkSessions(c); err != nil {
		return err
	}
	c.Accounts.Argon2.SaltLength, c.Accounts.Argon2.KeyLength = auth.DefaultParams().SaltLength, auth.DefaultParams().KeyLength
	if err := c.Accounts.Argon2.Validate(); err != nil {
		return &InvalidError{
			Source: "IDLOG_ARGON2_MEMORY", Value: strconv.Itoa(int(c.Accounts.Argon2.Memory)),
			Reason: fmt.Sprintf("%v (IDLOG_ARGON2_PARALLELISM is %d)", err, c.Accounts.Argon2.Parallelism),
		}
	}
	return nil
}

func init() {
	settings = append(settings, accountSettings...)
	settings = append(settings, labelWalletSettings...)
	settings = append(settings, gatekeeperSettings...)
}
