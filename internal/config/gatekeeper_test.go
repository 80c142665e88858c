package config_test

import (
	"crypto/sha256"
	"errors"
	"strings"
	"testing"

	"github.com/idlog/idlog/internal/config"
)

func TestIntrospectClients(t *testing.T) {
	t.Parallel()
	sum := sha256.Sum256([]byte("secret"))
	hexSum := "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"
	c, err := load(t, map[string]string{"IDLOG_INTROSPECT_CLIENTS": "rs:" + hexSum + ", other:" + hexSum})
	if err != nil {
		t.Fatal(err)
	}
	m, err := c.Accounts.Gatekeeper.IntrospectClientMap()
	if err != nil || len(m) != 2 || m["rs"] != sum || m["other"] != sum {
		t.Fatalf("clients = %v, %v", m, err)
	}
	for _, bad := range []string{"rs", "rs:abc", ":" + hexSum, "rs:" + hexSum + ",rs:" + hexSum, "rs:" + strings.Repeat("z", 64)} {
		if _, err := load(t, map[string]string{"IDLOG_INTROSPECT_CLIENTS": bad}); !errors.Is(err, config.ErrInvalid) ||
			!strings.Contains(err.Error(), "IDLOG_INTROSPECT_CLIENTS") {
			t.Errorf("%q: %v, want an error naming IDLOG_INTROSPECT_CLIENTS", bad, err)
		}
	}
	// None by default: only API keys may introspect.
	c, err = load(t, nil)
	if m, _ := c.Accounts.Gatekeeper.IntrospectClientMap(); err != nil || len(m) != 0 {
		t.Fatalf("default clients = %v, %v", m, err)
	}
}
