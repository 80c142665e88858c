package config

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Gatekeeper are the settings of the authz endpoint for gateways and of API keys
// (IDLOG_AUTHZ_*, IDLOG_GEOIP_DB, IDLOG_APIKEY_*, IDLOG_INTROSPECT_CLIENTS).
type Gatekeeper struct {
	// UpstreamTokenTTL is the lifetime of the token the authz endpoint hands the upstream service.
	UpstreamTokenTTL time.Duration
	// PublicPaths are path prefixes, comma-separated, that the authz endpoint lets through without
	// authentication (Barong's "pass" rules); restrictions still apply.
	PublicPaths string
	// GeoIPDB is a MaxMind-format database (GeoLite2-Country, say) for country and continent
	// restrictions; empty: such restrictions match nobody.
	GeoIPDB string
	// NonceWindow is how far an API key's nonce may be from the server's clock.
	NonceWindow time.Duration
	// IntrospectClients are the resource servers that may introspect tokens with HTTP Basic:
	// "name:sha256hex,..." with the SHA-256 of each one's random secret, checked when set
	// (IntrospectClientMap).
	IntrospectClients string
}

// IntrospectClientMap parses IntrospectClients: a client's name to the SHA-256 of its secret.
func (g Gatekeeper) IntrospectClientMap() (map[string][sha256.Size]byte, error) {
	out := map[string][sha256.Size]byte{}
	for _, item := range strings.Split(g.IntrospectClients, ",") {
		if item = strings.TrimSpace(item); item == "" {
			continue
		}
		name, sum, ok := strings.Cut(item, ":")
		b, err := hex.DecodeString(sum)
		if !ok || name == "" || strings.ContainsAny(name, " \t") || err != nil || len(b) != sha256.Size {
			return nil, errors.New("want name:sha256-hex-of-secret, comma-separated")
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("client %q twice", name)
		}
		out[name] = [sha256.Size]byte(b)
	}
	return out, nil
}

// PublicPathList is PublicPaths, one prefix an element; nil if none.
func (g Gatekeeper) PublicPathList() []string {
	var out []string
	for _, p := range strings.Split(g.PublicPaths, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// LogValue logs the settings.
func (g Gatekeeper) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Duration("upstream_token_ttl", g.UpstreamTokenTTL),
		slog.String("public_paths", g.PublicPaths),
		slog.String("geoip_db", g.GeoIPDB),
		slog.Duration("nonce_window", g.NonceWindow),
		slog.Int("introspect_clients", strings.Count(g.IntrospectClients, ":")),
	)
}

var gatekeeperSettings = []setting{
	durationSetting("IDLOG_AUTHZ_TOKEN_TTL", "authz-token-ttl", "60s", "lifetime of the token the authz endpoint gives the upstream service (`duration`)",
		func(a *Accounts, d time.Duration) { a.Gatekeeper.UpstreamTokenTTL = d }),
	{
		env: "IDLOG_AUTHZ_PUBLIC_PATHS", flag: "authz-public-paths",
		usage: "comma-separated path `prefixes` the authz endpoint lets through without authentication",
		apply: func(c *Config, v string) error {
			if strings.ContainsAny(v, " \t?#") {
				return errors.New("want comma-separated path prefixes without spaces, query or fragment")
			}
			c.Accounts.Gatekeeper.PublicPaths = v
			return nil
		},
	},
	{
		env: "IDLOG_GEOIP_DB", flag: "geoip-db",
		usage: "MaxMind-format database (`path`) for country and continent restrictions; empty: none",
		apply: func(c *Config, v string) error {
			c.Accounts.Gatekeeper.GeoIPDB = strings.TrimSpace(v)
			return nil
		},
	},
	{
		env: "IDLOG_INTROSPECT_CLIENTS", flag: "introspect-clients",
		usage: "resource servers that may introspect tokens with HTTP Basic: comma-separated `name:sha256hex` of each one's random secret",
		apply: func(c *Config, v string) error {
			g := Gatekeeper{IntrospectClients: v}
			if _, err := g.IntrospectClientMap(); err != nil {
				return err
			}
			c.Accounts.Gatekeeper.IntrospectClients = v
			return nil
		},
	},
	durationSetting("IDLOG_APIKEY_NONCE_WINDOW", "apikey-nonce-window", "5s", "how far an API key's nonce (ms since the epoch) may be from the server's clock (`duration`)",
		func(a *Accounts, d time.Duration) { a.Gatekeeper.NonceWindow = d }),
}
