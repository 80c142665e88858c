package main

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/idlog/idlog/eventbus"
)

// A new events signing key keeps the old public key in the JWKS, after the new one, so events
// published before the change still verify; the key files are 0600.
func TestEventSigningKeyChangeKeepsThePreviousKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	env := &environment{stdout: io.Discard, stderr: io.Discard, getenv: func(k string) string {
		return map[string]string{"IDLOG_DATA_DIR": dir}[k]
	}}
	cfg, err := loadConfig(flag.NewFlagSet("test", flag.ContinueOnError), nil, env)
	if err != nil {
		t.Fatal(err)
	}
	before, err := loadEventSigner(cfg)
	if err != nil {
		t.Fatal(err)
	}
	again, err := loadEventSigner(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if again.KeyID() != before.KeyID() || len(again.JWKS().Keys) != 1 {
		t.Fatalf("a restart changed the key: %s then %s, %d keys", before.KeyID(), again.KeyID(), len(again.JWKS().Keys))
	}
	if err := os.Remove(cfg.EventsSigningKeyPath()); err != nil { // the operator rotates it
		t.Fatal(err)
	}
	after, err := loadEventSigner(cfg)
	if err != nil {
		t.Fatal(err)
	}
	keys := after.JWKS().Keys
	if after.KeyID() == before.KeyID() || len(keys) != 2 || keys[0].Kid != after.KeyID() || keys[1].Kid != before.KeyID() {
		t.Errorf("JWKS after the change %+v, want the new key %s then the old %s", keys, after.KeyID(), before.KeyID())
	}
	doc, err := os.ReadFile(cfg.EventsKeysPath())
	if err != nil {
		t.Fatal(err)
	}
	published, err := eventbus.ParseEventKeys(doc)
	if err != nil || len(published) != 2 {
		t.Fatalf("%s holds %d keys (%v), want 2", cfg.EventsKeysPath(), len(published), err)
	}
	for _, f := range []string{cfg.EventsSigningKeyPath(), cfg.EventsKeysPath()} {
		if info, err := os.Stat(f); err != nil || info.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, want mode 0600", filepath.Base(f), err)
		}
	}
}
