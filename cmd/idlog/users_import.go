package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/userimport"
)

// maxImportFile bounds the file an import reads into memory (about 2 million users).
const maxImportFile = 1 << 30

// importUsers brings users from another system (README.md, "Importing users").
func importUsers(ctx context.Context, env *environment, args []string) error {
	fs := flag.NewFlagSet("users import", flag.ContinueOnError)
	formatName := fs.String("format", string(userimport.FormatIdlog), "the file's `layout`: idlog, barong (Barong's users table) or wekan (Wekan's users JSON)")
	file := fs.String("file", "", "the `path` of the NDJSON, JSON or CSV file; standard input if empty")
	workers := fs.Int("workers", 8, "concurrent writes")
	cfg, err := loadConfig(fs, args, env)
	if err != nil {
		return err
	}
	format, err := userimport.ParseFormat(*formatName)
	if err != nil {
		return err
	}
	var in io.Reader = env.stdin
	if *file != "" {
		f, err := os.Open(*file)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	if in == nil {
		return errors.New("no file: give --file or standard input")
	}
	data, err := io.ReadAll(io.LimitReader(in, maxImportFile+1))
	if err != nil {
		return fmt.Errorf("read the file: %w", err)
	}
	if len(data) > maxImportFile {
		return fmt.Errorf("the file is larger than %d bytes: split it", maxImportFile)
	}

	log := newLogger(env.stderr, cfg)
	store, err := openStore(ctx, cfg, log)
	if err != nil {
		return cfg.RedactError(fmt.Errorf("open %s event store: %w", cfg.EventStore(), err))
	}
	defer store.Close()
	// Imported users' personal data is sealed with their data keys, and their unique keys
	// hashed, as serve's appends are.
	sealed, closeSealing, err := sealPersonalData(ctx, cfg, store)
	if err != nil {
		return cfg.RedactError(fmt.Errorf("personal data: %w", err))
	}
	defer closeSealing()
	store = sealed
	keys, ok := store.(eventstore.KeyOwners)
	if !ok {
		return fmt.Errorf("the %s event store cannot check emails (no KeyOwners)", cfg.EventStore())
	}
	var levels domain.Levels
	if cfg.Accounts.Levels != "" {
		if levels, err = domain.ParseLevels(cfg.Accounts.Levels); err != nil {
			return err
		}
	}
	rep, err := userimport.New(store, keys, domain.NewEventRegistry()).Import(ctx, data, userimport.Options{
		Format: format, Workers: *workers, Levels: levels,
	})
	for i, r := range rep.Refused {
		if i == 100 {
			fmt.Fprintf(env.stderr, "... and %d more\n", len(rep.Refused)-i)
			break
		}
		fmt.Fprintf(env.stderr, "refused: %s\n", r)
	}
	rate := 0.0
	if s := rep.Elapsed.Seconds(); s > 0 {
		rate = float64(rep.Imported) / s
	}
	fmt.Fprintf(env.stdout, "file %s: %d rows, %d imported, %d already imported, %d refused (%.0f users/s)\n",
		rep.File[:16], rep.Rows, rep.Imported, rep.AlreadyImported, len(rep.Refused), rate)
	if errors.Is(err, userimport.ErrRefused) {
		return fmt.Errorf("%w; nothing was written", err)
	}
	return cfg.RedactError(err)
}
