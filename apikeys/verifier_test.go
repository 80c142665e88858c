package apikeys_test

import (
	"testing"

	"github.com/idlog/idlog/apikeys"
)

// The signature is Barong's: hex(HMAC(secret, nonce + kid)). The expected values were computed
// apart, with Python's hmac module.
func TestSignatureIsBarongs(t *testing.T) {
	t.Parallel()
	for alg, want := range map[string]string{
		"HS256": "d9dbf97ad55f24937535e7eb4303838639e9dcc1fe2bcde66ab4e1c6f44172c5",
		"HS512": "902473eccdd68adc8aaaac9cce2b1a0267f9d2d955cc71affe3ec68f199e5490c3514e4b21f34319f7402d85cfdc134125e5c0c19b886beee9dc721f10f6f022",
	} {
		got, err := apikeys.Signature(alg, []byte("secret"), "1700000000000", "my-kid")
		if err != nil || got != want {
			t.Errorf("%s = %s, %v; want %s", alg, got, err, want)
		}
	}
	if _, err := apikeys.Signature("RS256", []byte("secret"), "1", "k"); err == nil {
		t.Error("RS256 signed")
	}
}
