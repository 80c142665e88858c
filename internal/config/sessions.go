package config

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/idlog/idlog/domain"
)

// sessionSettings bound what one user costs: how many sessions they may hold open at once, and how
// often their rebuilt state is saved as a snapshot beside the log. Their defaults are left to the
// commands (empty here), so that an unset variable keeps the zero value.
var sessionSettings = []setting{
	intSetting("IDLOG_MAX_SESSIONS", "max-sessions", "", "sessions a user may have open at once; a sign-in beyond ends the oldest (`n`; default 100)", 1, domain.MaxSessionLimit,
		func(a *Accounts, n int) { a.MaxSessions = n }),
	intSetting("IDLOG_SNAPSHOT_EVERY", "snapshot-every", "", "events after which a user's state is saved again as a snapshot (`n`; 0: no snapshots; default 100)", 0, 1000000,
		func(a *Accounts, n int) {
			if n == 0 {
				n = -1 // the commands read 0 as "the default" and a negative value as "off"
			}
			a.SnapshotEvery = n
		}),
	durationSetting("IDLOG_SESSION_IDLE_TIMEOUT", "session-idle-timeout", "168h", "a session whose refresh token is not used for this long ends (`duration`)",
		func(a *Accounts, d time.Duration) { a.SessionIdleTimeout = d }),
	durationSetting("IDLOG_SESSION_MAX_LIFETIME", "session-max-lifetime", "720h", "a session ends this long after its sign-in however it is renewed; at least the idle timeout (`duration`)",
		func(a *Accounts, d time.Duration) { a.SessionMaxLifetime = d }),
	boolSetting("IDLOG_SESSION_COOKIES", "session-cookies", "false", "sign-ins open cookie sessions (HttpOnly cookies and a CSRF token) unless they send cookie=false (`bool`)",
		func(a *Accounts, b bool) { a.SessionCookies = b }),
	boolSetting("IDLOG_SECURE_COOKIES", "secure-cookies", "false", "mark session cookies Secure on every request, for a public https URL behind a proxy ending TLS (`bool`; requests over TLS get Secure cookies anyway)",
		func(a *Accounts, b bool) { a.SecureCookies = b }),
	{
		env: "IDLOG_CORS_ORIGINS", flag: "cors-origins",
		usage: "comma-separated browser `origins` (scheme://host[:port]) allowed to call the API with credentials; empty: same origin only",
		apply: func(c *Config, v string) error {
			origins, err := parseOrigins(v)
			if err != nil {
				return err
			}
			c.Accounts.CORSOrigins = strings.Join(origins, ",")
			return nil
		},
	},
}

func boolSetting(env, flag, def, usage string, set func(a *Accounts, b bool)) setting {
	return setting{env: env, flag: flag, def: def, usage: usage, apply: func(c *Config, v string) error {
		b, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			return errors.New("want true or false")
		}
		set(&c.Accounts, b)
		return nil
	}}
}

// parseOrigins reads a CORS allowlist: origins only (no path), never "*" or "null", which would
// give any page the user's credentials.
func parseOrigins(v string) ([]string, error) {
	var out []string
	for _, o := range strings.Split(v, ",") {
		o = strings.TrimSpace(o)
		if o == "" {
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || strings.Contains(o, "*") || o != u.Scheme+"://"+u.Host {
			return nil, fmt.Errorf("%q is not an origin: want scheme://host[:port], no path, no wildcard", o)
		}
		out = append(out, o)
	}
	return out, nil
}

// checkSessions checks the session lifetimes together.
func checkSessions(c *Config) error {
	a := c.Accounts
	if a.SessionMaxLifetime > 0 && a.SessionIdleTimeout > 0 && a.SessionMaxLifetime < a.SessionIdleTimeout {
		return &InvalidError{
			Source: "IDLOG_SESSION_MAX_LIFETIME", Value: a.SessionMaxLifetime.String(),
			Reason: fmt.Sprintf("must not be shorter than IDLOG_SESSION_IDLE_TIMEOUT (%v)", a.SessionIdleTimeout),
		}
	}
	return nil
}

func init() { settings = append(settings, sessionSettings...) }
