package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/idlog/idlog/audit"
	"github.com/idlog/idlog/eventstore/postgres"
)

// eventsExportImport are the subcommands of idlog events that move a whole history between
// event stores; withSubcommands adds them to the events command.
var eventsExportImport = map[string]func(ctx context.Context, env *environment, args []string) error{
	"export": eventsExport,
	"import": eventsImport,
}

const eventsExportImportUsage = "Usage: idlog events export [-from ordinal] [flags] > log.ndjson\n" +
	"       idlog events import [flags] < log.ndjson\n\n" +
	"export writes the event log as NDJSON, one event a line with its ordinal and hash chain;\n" +
	"import writes such a file into an empty event store, after checking its chain.\n\n"

// withSubcommands returns c with more subcommands, dispatched before c's own.
func withSubcommands(c command, subs map[string]func(ctx context.Context, env *environment, args []string) error, usage string) command {
	run := c.run
	c.run = func(ctx context.Context, env *environment, args []string) error {
		if len(args) > 0 {
			if sub, ok := subs[args[0]]; ok {
				return sub(ctx, env, args[1:])
			}
		}
		if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help" {
			fmt.Fprint(env.stderr, usage)
		}
		return run(ctx, env, args)
	}
	return c
}

func eventsExport(ctx context.Context, env *environment, args []string) error {
	fs := flag.NewFlagSet("events export", flag.ContinueOnError)
	from := fs.Uint64("from", 0, "first `ordinal` to export (1 is the first event); the chain is still computed from the first")
	cfg, err := loadConfig(fs, args, env)
	if err != nil {
		return err
	}
	store, err := openStore(ctx, cfg, newLogger(env.stderr, cfg))
	if err != nil {
		return cfg.RedactError(err)
	}
	defer store.Close()
	sum, err := audit.Export(ctx, store, env.stdout, *from)
	if err != nil {
		return cfg.RedactError(err)
	}
	fmt.Fprintf(env.stderr, "exported %d events (ordinals %d to %d), chain head %s\n", sum.Events, sum.FirstOrdinal, sum.LastOrdinal, sum.Head)
	return nil
}

func eventsImport(ctx context.Context, env *environment, args []string) error {
	fs := flag.NewFlagSet("events import", flag.ContinueOnError)
	cfg, err := loadConfig(fs, args, env)
	if err != nil {
		return err
	}
	if env.stdin == nil {
		return errors.New("no standard input to read the export from")
	}
	in, cleanup, err := seekable(env.stdin)
	if err != nil {
		return err
	}
	defer cleanup()
	store, err := openStore(ctx, cfg, newLogger(env.stderr, cfg))
	if err != nil {
		return cfg.RedactError(err)
	}
	defer store.Close()
	sum, err := audit.Import(ctx, store, in, audit.ImportOptions{Keys: audit.UserKeys(nil)})
	if err != nil {
		return cfg.RedactError(err)
	}
	if pg, ok := store.(*postgres.Store); ok {
		// A table filled at once has no planner statistics until autovacuum comes by; readers of
		// the log (projections rebuilding from 0) would meanwhile get slow plans.
		if _, err := pg.DB().ExecContext(ctx, `ANALYZE events`); err != nil {
			fmt.Fprintf(env.stderr, "warning: analyze events: %v\n", cfg.RedactError(err))
		}
	}
	fmt.Fprintf(env.stderr, "imported %d events, chain head %s; email and username claims rebuilt (idempotency keys are not)\n", sum.Events, sum.Head)
	return nil
}

// seekable returns r as a ReadSeeker, for Import reads its input twice: a regular file as it is,
// anything else (a pipe) copied to a private temporary file first.
func seekable(r io.Reader) (io.ReadSeeker, func(), error) {
	if f, ok := r.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
			return f, func() {}, nil
		}
	}
	tmp, err := os.CreateTemp("", "idlog-import-*.ndjson") // 0600: the log holds personal data
	if err != nil {
		return nil, nil, fmt.Errorf("spool the input: %w", err)
	}
	cleanup := func() { tmp.Close(); os.Remove(tmp.Name()) }
	if _, err := io.Copy(tmp, r); err != nil {
		cleanup()
		return nil, nil, fmt.Errorf("spool the input to %s: %w", tmp.Name(), err)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		cleanup()
		return nil, nil, err
	}
	return tmp, cleanup, nil
}
