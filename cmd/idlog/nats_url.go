package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/idlog/idlog/internal/config"
)

// natsURLFile is the file in the data directory where idlog serve writes the URL of its embedded
// NATS server while it runs, so that idlog events tail finds it even when serve took another
// port than IDLOG_NATS_PORT (the default port was in use, or IDLOG_NATS_PORT=0).
const natsURLFile = "nats.url"

func natsURLPath(cfg config.Config) string { return filepath.Join(cfg.DataDir, natsURLFile) }

// writeNATSURL records the embedded server's URL; removeNATSURL forgets it when serve stops.
func writeNATSURL(cfg config.Config, url string) error {
	if err := os.WriteFile(natsURLPath(cfg), []byte(url+"\n"), 0o600); err != nil {
		return fmt.Errorf("record the embedded NATS server's URL: %w", err)
	}
	return nil
}

func removeNATSURL(cfg config.Config, url string) {
	// Only if it is still ours: another serve of the same directory may have written its own.
	if b, err := os.ReadFile(natsURLPath(cfg)); err == nil && strings.TrimSpace(string(b)) == url {
		_ = os.Remove(natsURLPath(cfg))
	}
}

// readNATSURL returns the URL the running serve of cfg's data directory recorded, "" if none.
func readNATSURL(cfg config.Config) (string, error) {
	b, err := os.ReadFile(natsURLPath(cfg))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	url := strings.TrimSpace(string(b))
	if !strings.HasPrefix(url, "nats://") {
		return "", fmt.Errorf("%s holds %q, not a nats:// URL", natsURLPath(cfg), url)
	}
	return url, nil
}
