package config

import (
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
)

// Audit are the settings of the verifiable log: the key that signs the audit checkpoints and
// where, outside the database, a copy of every signed checkpoint goes.
type Audit struct {
	// KeyFile holds the audit key (a note signer key and its verifier key, one a line); empty
	// means keys/audit.key in the data directory. A missing file is created with a new key.
	KeyFile string
	// CheckpointFile, when set, receives every signed checkpoint, appended.
	CheckpointFile string
	// WitnessURL, when set, receives every signed checkpoint by POST (C2SP tlog-witness
	// add-checkpoint, with a consistency proof).
	WitnessURL string
}

// LogValue names the files; the key never reaches the log.
func (a Audit) LogValue() slog.Value {
	return slog.GroupValue(slog.String("key_file", a.KeyFile), slog.String("checkpoint_file", a.CheckpointFile), slog.String("witness_url", a.WitnessURL))
}

var defaultAuditKey = filepath.Join(keysDir, "audit.key")

// AuditKeyPath is the file of the audit key.
func (c Config) AuditKeyPath() string {
	if c.Audit.KeyFile != "" {
		return c.Audit.KeyFile
	}
	return filepath.Join(c.DataDir, defaultAuditKey)
}

var auditSettings = []setting{
	{
		env: "IDLOG_AUDIT_KEY_FILE", flag: "audit-key-file",
		usage: "`file` of the audit key signing the audit checkpoints (default <data-dir>/keys/audit.key, created if missing)",
		apply: func(c *Config, v string) error {
			if strings.TrimSpace(v) == "" {
				return errors.New("must not be empty")
			}
			c.Audit.KeyFile = filepath.Clean(v)
			return nil
		},
	},
	{
		env: "IDLOG_AUDIT_CHECKPOINT_FILE", flag: "audit-checkpoint-file",
		usage: "`file`, outside the database, to which every signed audit checkpoint is appended (default none)",
		apply: func(c *Config, v string) error {
			if strings.TrimSpace(v) != "" {
				c.Audit.CheckpointFile = filepath.Clean(v)
			}
			return nil
		},
	},
	{
		env: "IDLOG_AUDIT_WITNESS_URL", flag: "audit-witness-url",
		usage: "`URL` of a witness (C2SP tlog-witness add-checkpoint) to which every signed audit checkpoint is POSTed (default none)",
		apply: func(c *Config, v string) error {
			v = strings.TrimSpace(v)
			if v != "" && !strings.HasPrefix(v, "http://") && !strings.HasPrefix(v, "https://") {
				return errors.New("must be an http:// or https:// URL")
			}
			c.Audit.WitnessURL = v
			return nil
		},
	},
}

func init() {
	settings = append(settings, auditSettings...)
}
