package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/idlog/idlog/internal/logprivacy"
)

// A sign-up, sign-ins (right and wrong, up to the lockout) and a reset request through the
// router: no log message holds the email address or the client's address, whatever the setting;
// with personal data left out of logs (IDLOG_LOG_PERSONAL_DATA=false), no line holds them at all.
func TestLogsKeepPersonalDataOutOfMessages(t *testing.T) {
	t.Parallel()
	for _, strip := range []bool{false, true} {
		name := "personal data in attributes"
		if strip {
			name = "personal data left out"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			o := serverOptions{}
			if strip {
				o.logHandler = logprivacy.WithoutPersonalData
			}
			s := newServer(t, "sqlite", o)
			const (
				email  = "Pii.Person@example.com"
				ip     = "198.51.100.23"
				agent  = "pii-agent/1.0"
				header = "User-Agent"
			)
			call := func(path string, body obj) response {
				return s.do(request{method: http.MethodPost, path: path, body: body, remote: ip + ":4242",
					header: http.Header{header: {agent}}})
			}
			call("/api/v2/identity/users", obj{"email": email, "password": password}).want(t, http.StatusCreated)
			call("/api/v2/identity/sessions", obj{"login": email, "password": password}).want(t, http.StatusOK)
			for range 7 { // past the lockout, so the throttled sign-in is logged too
				call("/api/v2/identity/sessions", obj{"login": email, "password": "wrong " + password})
			}
			call("/api/v2/identity/users/password/generate_code", obj{"email": email})

			logs := s.logs.String()
			personal := []string{strings.ToLower(email), ip, agent}
			for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
				var entry struct {
					Msg string `json:"msg"`
				}
				if err := json.Unmarshal([]byte(line), &entry); err != nil {
					t.Fatalf("log line is not JSON: %q", line)
				}
				for _, p := range personal {
					if strings.Contains(strings.ToLower(entry.Msg), strings.ToLower(p)) {
						t.Errorf("the message %q holds personal data (%s)", entry.Msg, p)
					}
				}
			}
			lower := strings.ToLower(logs)
			if !strip {
				// Otherwise the check above saw nothing worth hiding.
				if !strings.Contains(lower, strings.ToLower(email)) || !strings.Contains(logs, ip) {
					t.Errorf("the logs name neither the address nor the client, in attributes:\n%s", logs)
				}
				return
			}
			for _, p := range personal {
				if strings.Contains(lower, strings.ToLower(p)) {
					t.Errorf("with personal data left out, the logs still hold %s:\n%s", p, logs)
				}
			}
			if !strings.Contains(logs, `"msg":"email code sent"`) {
				t.Errorf("the filter dropped whole lines, not attributes:\n%s", logs)
			}
		})
	}
}
