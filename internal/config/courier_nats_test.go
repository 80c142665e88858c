package config_test

import (
	"strings"
	"testing"

	"github.com/nats-io/nkeys"
)

// IDLOG_COURIER_NATS_SEAL_TO takes a public curve key and refuses anything else (a user key, a seed).
func TestCourierNATSSealTo(t *testing.T) {
	t.Parallel()
	kp, _ := nkeys.CreateCurveKeys()
	pub, _ := kp.PublicKey()
	c, err := load(t, map[string]string{"IDLOG_COURIER_NATS": "true", "IDLOG_COURIER_NATS_SEAL_TO": pub})
	if err != nil || c.Courier.NATSSealTo != pub {
		t.Fatalf("NATSSealTo %q, %v; want %s", c.Courier.NATSSealTo, err, pub)
	}
	user, _ := nkeys.CreateUser()
	upub, _ := user.PublicKey()
	seed, _ := kp.Seed()
	for _, bad := range []string{upub, string(seed), "X123"} {
		_, err := load(t, map[string]string{"IDLOG_COURIER_NATS_SEAL_TO": bad})
		if err == nil || !strings.Contains(err.Error(), "want a public curve key") {
			t.Errorf("IDLOG_COURIER_NATS_SEAL_TO=%.8s...: %v, want a refusal", bad, err)
		}
		if err != nil && strings.Contains(err.Error(), string(seed)) && bad == string(seed) {
			t.Errorf("the error shows the seed")
		}
	}
}
