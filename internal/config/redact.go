package config

import (
	"net/url"
	"regexp"
	"sort"
	"strings"
)

// redactedValue replaces a password.
const redactedValue = "xxxxx"

// passwordParam matches a password given as a parameter: in a URL's query (?password=...) or in a
// key=value connection string (password='...').
var passwordParam = regexp.MustCompile(`(?i)(\bpassword\s*=\s*)('[^']*'|[^&\s]*)`)

// RedactURL returns s with every password it holds replaced by "xxxxx": the password of each URL's
// user info (s may be a comma-separated list of URLs), password parameters, and the whole user
// info of NATS URLs, where a lone user name is a token. It works on text that does not parse as a
// URL too, and prefers hiding too much to hiding too little.
func RedactURL(s string) string {
	out, _ := redact(s)
	return out
}

// redact returns s redacted and the secrets it found, as they were written.
func redact(s string) (string, []string) {
	var (
		b       strings.Builder
		secrets []string
	)
	rest := s
	for {
		i := strings.Index(rest, "://")
		if i < 0 {
			b.WriteString(rest)
			break
		}
		scheme := schemeBefore(rest[:i])
		b.WriteString(rest[:i+3])
		rest = rest[i+3:]
		// The user info ends at the last '@' before the next URL of a list: a password may hold an
		// unescaped '@' or '/'.
		end := len(rest)
		if j := strings.Index(rest, "://"); j >= 0 {
			end = j
		}
		at := strings.LastIndex(rest[:end], "@")
		if at < 0 {
			continue
		}
		user, pass, hasPass := strings.Cut(rest[:at], ":")
		switch {
		case hasPass:
			b.WriteString(user + ":" + redactedValue)
			secrets = append(secrets, pass)
		case isNATSScheme(scheme):
			b.WriteString(redactedValue)
			secrets = append(secrets, user)
		default:
			b.WriteString(user)
		}
		rest = rest[at:]
	}
	out := passwordParam.ReplaceAllStringFunc(b.String(), func(m string) string {
		sub := passwordParam.FindStringSubmatch(m)
		secrets = append(secrets, strings.Trim(sub[2], "'"))
		return sub[1] + redactedValue
	})
	return out, secrets
}

// schemeBefore returns the URL scheme that ends s ("nats" in "x,nats").
func schemeBefore(s string) string {
	i := len(s)
	for i > 0 {
		c := s[i-1]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '+' || c == '-' || c == '.') {
			break
		}
		i--
	}
	return strings.ToLower(s[i:])
}

func isNATSScheme(s string) bool {
	switch s {
	case "nats", "tls", "ws", "wss":
		return true
	}
	return false
}

// RedactError returns err with every password of the configured URLs removed from its message,
// for errors of libraries that may echo a connection string. errors.Is and errors.As still see
// the original chain. It returns nil for nil.
func (c Config) RedactError(err error) error {
	if err == nil {
		return nil
	}
	var secrets []string
	for _, u := range []string{c.DatabaseURL, c.ReadDatabaseURL, c.EventStoreURL, c.NATSURL} {
		_, found := redact(u)
		for _, s := range found {
			secrets = append(secrets, s)
			// A library may print the password decoded.
			if d, err := url.PathUnescape(s); err == nil {
				secrets = append(secrets, d)
			}
			if d, err := url.QueryUnescape(s); err == nil {
				secrets = append(secrets, d)
			}
		}
	}
	// Longer first, so a secret that contains another is replaced whole.
	sort.Slice(secrets, func(i, j int) bool { return len(secrets[i]) > len(secrets[j]) })
	msg := RedactURL(err.Error())
	for _, s := range secrets {
		if s != "" && s != redactedValue {
			msg = strings.ReplaceAll(msg, s, redactedValue)
		}
	}
	if msg == err.Error() {
		return err
	}
	return &redactedError{msg: msg, err: err}
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
