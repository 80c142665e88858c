package config

import (
	"errors"
	"log/slog"
	"path/filepath"
	"strings"

	"github.com/idlog/idlog/blobs"
)

// Blobs say where the files of identity documents go, outside the event log: a directory (the
// default, <data-dir>/blobs) or, for replicas that share no disk, an S3-compatible bucket.
type Blobs struct {
	// Dir is the directory; empty means blobs in the data directory.
	Dir string
	// S3URL, when set, puts them in a bucket (blobs.ParseS3URL); it holds the secret key.
	S3URL string
}

// LogValue names the directory and the bucket's endpoint, never its keys.
func (b Blobs) LogValue() slog.Value {
	return slog.GroupValue(slog.String("dir", b.Dir), slog.String("s3_url", RedactURL(b.S3URL)))
}

// BlobDir is the directory of the blobs when no bucket is set.
func (c Config) BlobDir() string {
	if c.Blobs.Dir != "" {
		return c.Blobs.Dir
	}
	return filepath.Join(c.DataDir, "blobs")
}

var blobSettings = []setting{
	{
		env: "IDLOG_BLOB_DIR", flag: "blob-dir",
		usage: "`directory` of the identity documents' files (default <data-dir>/blobs)",
		apply: func(c *Config, v string) error {
			if strings.TrimSpace(v) == "" {
				return errors.New("must not be empty")
			}
			c.Blobs.Dir = filepath.Clean(v)
			return nil
		},
	},
	{
		env: "IDLOG_BLOB_S3_URL", flag: "blob-s3-url", secret: true,
		usage: "S3-compatible bucket for the identity documents' files (`URL` https://ACCESS_KEY:SECRET_KEY@host/bucket[/prefix][?region=]); empty keeps them in IDLOG_BLOB_DIR",
		apply: func(c *Config, v string) error {
			if _, err := blobs.ParseS3URL(v); err != nil {
				return err
			}
			c.Blobs.S3URL = v
			return nil
		},
	},
}

func init() {
	settings = append(settings, blobSettings...)
}
