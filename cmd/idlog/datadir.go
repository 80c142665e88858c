package main

import (
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
)

// The data directory holds password hashes, emails, addresses and keys: only idlog's user may
// read it. New files are private whatever the caller's umask (privateUmask); a directory made
// readable by an older idlog or by hand is tightened at start.
const (
	privateDirMode  fs.FileMode = 0o700
	privateFileMode fs.FileMode = 0o600
)

// prepareDataDir makes dir (mode 0700) if it is missing, and takes group and other permissions
// away from it and from everything in it, logging what it changed.
func prepareDataDir(dir string, log *slog.Logger) error {
	if err := os.MkdirAll(dir, privateDirMode); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	tightened := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return nil // chmod would follow it out of the directory
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		mode := info.Mode().Perm()
		if mode&0o077 == 0 {
			return nil
		}
		if err := os.Chmod(path, mode&^0o077); err != nil {
			return err
		}
		tightened++
		return nil
	})
	if err != nil {
		return fmt.Errorf("data directory: restrict its permissions: %w", err)
	}
	if tightened > 0 {
		log.Warn("data directory was readable by others: group and other permissions removed",
			"data_dir", dir, "entries", tightened)
	}
	return nil
}
