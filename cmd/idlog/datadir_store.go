package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/idlog/idlog/internal/config"
)

// storeMarkerFile, in the data directory, names the event store whose state the directory holds:
// the embedded NATS server's stream of that log's events, and the keys. serve refuses to start
// with another event store on the same directory, which would mix two logs in one stream.
const storeMarkerFile = "eventstore"

// storeIdentity names cfg's event store without secrets: "sqlite", or the PostgreSQL or
// EventStoreDB host, port, database and schema (no user, no password).
func storeIdentity(cfg config.Config) string {
	var raw string
	switch cfg.EventStore() {
	case config.SQLite:
		return "sqlite"
	case config.Postgres:
		raw = cfg.DatabaseURL
	default:
		raw = cfg.EventStoreURL
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return string(cfg.EventStore()) // a key=value DSN: the engine at least
	}
	id := u.Scheme + "://" + u.Host + u.Path
	if sp := u.Query().Get("search_path"); sp != "" {
		id += "?search_path=" + sp
	}
	return id
}

// checkDataDir refuses a data directory that holds another event store's state, with what to do
// instead. It returns whether the directory still has to be claimed (claimDataDir), once the
// store has opened: a start that fails (a mistyped URL) claims nothing.
func checkDataDir(cfg config.Config) (unclaimed bool, err error) {
	marker := filepath.Join(cfg.DataDir, storeMarkerFile)
	want := storeIdentity(cfg)
	b, err := os.ReadFile(marker)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// A directory from before the marker: its SQLite log and NATS stream belong together.
		if want != "sqlite" && exists(cfg.SQLitePath()) && exists(cfg.NATSStoreDir()) {
			return false, dataDirTaken(cfg, "sqlite", want, marker)
		}
		return true, nil
	case err != nil:
		return false, fmt.Errorf("data directory: %w", err)
	}
	if have := strings.TrimSpace(string(b)); have != want {
		return false, dataDirTaken(cfg, have, want, marker)
	}
	return false, nil
}

// claimDataDir records the event store of the data directory, for checkDataDir.
func claimDataDir(cfg config.Config) error {
	marker := filepath.Join(cfg.DataDir, storeMarkerFile)
	if err := os.WriteFile(marker, []byte(storeIdentity(cfg)+"\n"), privateFileMode); err != nil {
		return fmt.Errorf("data directory: record its event store: %w", err)
	}
	return nil
}

func dataDirTaken(cfg config.Config, have, want, marker string) error {
	return fmt.Errorf("the data directory %s belongs to the %s event store, and this configuration uses %s: "+
		"its embedded NATS stream (%s) holds the other log's events, and both logs would be mixed in it. "+
		"Give this event store a data directory of its own (IDLOG_DATA_DIR or -data-dir; copy keys/ into it to keep the signing, secret and NATS keys), "+
		"or, to move this directory to the new store for good, remove %s and %s",
		cfg.DataDir, have, want, cfg.NATSStoreDir(), cfg.NATSStoreDir(), marker)
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
