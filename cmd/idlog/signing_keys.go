package main

import (
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"time"

	"github.com/idlog/idlog/auth"
	"github.com/idlog/idlog/internal/config"
)

// previousSigningKeys loads the public keys of IDLOG_SIGNING_KEY_PREVIOUS_FILES. Their grace
// may have ended already: they are loaded anyway (the signer ignores them), and the log says so,
// so the operator can remove them.
func previousSigningKeys(cfg config.Config, log *slog.Logger) ([]ed25519.PublicKey, error) {
	var keys []ed25519.PublicKey
	for _, path := range cfg.PreviousSigningKeyPaths() {
		k, err := auth.LoadVerifyingKey(path)
		if err != nil {
			return nil, fmt.Errorf("previous signing key (IDLOG_SIGNING_KEY_PREVIOUS_FILES): %w", err)
		}
		keys = append(keys, k)
		until := cfg.Accounts.SigningKeyPreviousUntil
		if time.Now().Before(until) {
			log.Info("previous signing key accepted", "file", path, "kid", auth.KeyID(k), "until", until)
		} else {
			log.Warn("previous signing key retired: its grace has ended, remove it from IDLOG_SIGNING_KEY_PREVIOUS_FILES",
				"file", path, "kid", auth.KeyID(k), "until", until)
		}
	}
	return keys, nil
}
