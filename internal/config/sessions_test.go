package config_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/idlog/idlog/internal/config"
)

func TestSessionSettings(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		env            map[string]string
		sessions, snap int
		wantErrName    string
	}{
		{env: map[string]string{}, sessions: 0, snap: 0}, // the commands' defaults: 100 and 100
		{env: map[string]string{"IDLOG_MAX_SESSIONS": "5", "IDLOG_SNAPSHOT_EVERY": "500"}, sessions: 5, snap: 500},
		{env: map[string]string{"IDLOG_SNAPSHOT_EVERY": "0"}, sessions: 0, snap: -1},
		{env: map[string]string{"IDLOG_MAX_SESSIONS": "0"}, wantErrName: "IDLOG_MAX_SESSIONS"},
		{env: map[string]string{"IDLOG_MAX_SESSIONS": "10001"}, wantErrName: "IDLOG_MAX_SESSIONS"},
		{env: map[string]string{"IDLOG_SNAPSHOT_EVERY": "-1"}, wantErrName: "IDLOG_SNAPSHOT_EVERY"},
	} {
		c, err := load(t, tc.env)
		if tc.wantErrName != "" {
			if !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), tc.wantErrName) {
				t.Errorf("%v: %v, want an error naming %s", tc.env, err, tc.wantErrName)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%v: %v", tc.env, err)
		}
		if c.Accounts.MaxSessions != tc.sessions || c.Accounts.SnapshotEvery != tc.snap {
			t.Errorf("%v: max sessions %d, snapshot every %d; want %d, %d", tc.env, c.Accounts.MaxSessions, c.Accounts.SnapshotEvery, tc.sessions, tc.snap)
		}
	}
}

func TestSessionLifetimeAndBrowserSettings(t *testing.T) {
	t.Parallel()
	c, err := load(t, map[string]string{
		"IDLOG_SESSION_IDLE_TIMEOUT": "1h", "IDLOG_SESSION_MAX_LIFETIME": "12h", "IDLOG_SESSION_COOKIES": "true",
		"IDLOG_SECURE_COOKIES": "true", "IDLOG_CORS_ORIGINS": "https://app.example.com, http://localhost:5173",
	})
	if err != nil {
		t.Fatal(err)
	}
	a := c.Accounts
	if a.SessionIdleTimeout != time.Hour || a.SessionMaxLifetime != 12*time.Hour || !a.SessionCookies || !a.SecureCookies {
		t.Errorf("accounts = %+v", a)
	}
	if got := strings.Join(a.CORSOriginList(), " "); got != "https://app.example.com http://localhost:5173" {
		t.Errorf("origins = %q", got)
	}
	for _, tc := range []struct{ env map[string]string }{
		{map[string]string{"IDLOG_SESSION_IDLE_TIMEOUT": "48h", "IDLOG_SESSION_MAX_LIFETIME": "24h"}},
		{map[string]string{"IDLOG_CORS_ORIGINS": "*"}},
		{map[string]string{"IDLOG_CORS_ORIGINS": "https://*.example.com"}},
		{map[string]string{"IDLOG_CORS_ORIGINS": "https://app.example.com/path"}},
		{map[string]string{"IDLOG_CORS_ORIGINS": "null"}},
		{map[string]string{"IDLOG_SESSION_COOKIES": "maybe"}},
	} {
		if _, err := load(t, tc.env); !errors.Is(err, config.ErrInvalid) {
			t.Errorf("%v: %v, want ErrInvalid", tc.env, err)
		}
	}
}
