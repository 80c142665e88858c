package logprivacy_test

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/idlog/idlog/internal/logprivacy"
)

type person struct{ email string }

func (p person) LogValue() slog.Value {
	return slog.GroupValue(slog.String("email", p.email), slog.String("uid", "ID1"))
}

func TestWithoutPersonalData(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log := slog.New(logprivacy.WithoutPersonalData(slog.NewJSONHandler(&buf, nil)))
	log.With("ip", "192.0.2.7").WithGroup("req").Info("sign-in throttled",
		"email", "alice@example.com", "user_agent", "curl/8", "uid", "ID1",
		slog.Group("client", "remote", "192.0.2.7:5555", "to", "alice@example.com"),
		"who", person{"alice@example.com"})
	out := buf.String()
	for _, gone := range []string{"alice@example.com", "192.0.2.7", "curl/8", `"client"`} {
		if strings.Contains(out, gone) {
			t.Errorf("the log line keeps %s: %s", gone, out)
		}
	}
	for _, kept := range []string{`"msg":"sign-in throttled"`, `"uid":"ID1"`, `"who":{"uid":"ID1"}`} {
		if !strings.Contains(out, kept) {
			t.Errorf("the log line lost %s: %s", kept, out)
		}
	}
}
