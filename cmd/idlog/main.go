// Command idlog is the identity backend's one binary. Each subcommand lives in a file of its own
// and is listed once in commands below.
//
//	idlog serve     run the HTTP server
//	idlog migrate   apply the SQL schema migrations
//	idlog projections  show the read models' status, or rebuild them without downtime
//	idlog events    follow the events published to NATS (events tail), export or import the log
//	idlog audit     seal the event log and verify that nothing was altered
//	idlog users     create users (the first administrator: users create --role admin), or import them
//	idlog healthcheck  exit 0 if the server answers /healthz (container health checks)
//	idlog version   print the version stamped at build time
//	idlog courier   read the local mailbox (courier ls, courier show) and the outbox queue
//
// Configuration comes from IDLOG_* environment variables; a subcommand's flags override them.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/idlog/idlog/internal/config"
	"github.com/idlog/idlog/internal/logprivacy"
)

// command is one subcommand. run gets the arguments after the subcommand's name.
type command struct {
	name, summary string
	run           func(ctx context.Context, env *environment, args []string) error
}

// commands are the subcommands, in the order the usage lists them.
var commands = []command{
	serveCommand,
	migrateCommand,
	projectionsCommand,
	withSubcommands(eventsCommand, eventsExportImport, eventsExportImportUsage),
	auditCommand,
	usersCommand,
	healthcheckCommand,
	versionCommand,
	courierCommand,
}

// environment is what a command may touch of the process, so tests can run commands in-process.
type environment struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
}

// errUsage: the command line was wrong and the usage has been printed; exit status 2.
var errUsage = errors.New("usage")

func main() {
	// The first SIGINT or SIGTERM asks for a graceful stop; a second one kills at once.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	os.Exit(run(ctx, os.Args[1:], &environment{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}))
}

// run dispatches to a subcommand and returns the exit status.
func run(ctx context.Context, args []string, env *environment) int {
	privateUmask()
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help" {
		usage(env.stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	if args[0] == "--version" || args[0] == "-version" {
		args = []string{"version"}
	}
	for _, c := range commands {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, env, args[1:])
		switch {
		case err == nil, errors.Is(err, flag.ErrHelp):
			return 0
		case errors.Is(err, errUsage):
			return 2
		default:
			fmt.Fprintf(env.stderr, "idlog %s: %v\n", c.name, err)
			return 1
		}
	}
	fmt.Fprintf(env.stderr, "idlog: unknown command %q\n\n", args[0])
	usage(env.stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprint(w, "Usage: idlog <command> [flags]\n\nCommands:\n")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-12s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, "\nRun idlog <command> -h for the command's flags.\n")
}

// loadConfig parses a subcommand's flags, which include the configuration flags, and loads the
// configuration. Flag errors have been printed with the usage when it returns errUsage.
func loadConfig(fs *flag.FlagSet, args []string, env *environment) (config.Config, error) {
	fs.SetOutput(env.stderr)
	// The command's own flags are those defined before the configuration's: -h lists them first.
	own := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) { own[f.Name] = true })
	fs.Usage = func() {
		fmt.Fprintf(env.stderr, "Usage: idlog %s [flags]\n", fs.Name())
		if len(own) > 0 {
			fmt.Fprintf(env.stderr, "\nFlags of idlog %s:\n", fs.Name())
			printFlags(env.stderr, fs, func(name string) bool { return own[name] })
		}
		fmt.Fprint(env.stderr, "\nConfiguration flags (each overrides its environment variable):\n")
		printFlags(env.stderr, fs, func(name string) bool { return !own[name] })
	}
	flags := config.Bind(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return config.Config{}, err
		}
		return config.Config{}, errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(env.stderr, "idlog %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		fs.Usage()
		return config.Config{}, errUsage
	}
	return flags.Load(env.getenv)
}

// printFlags prints the defaults of fs's flags that keep selects.
func printFlags(w io.Writer, fs *flag.FlagSet, keep func(name string) bool) {
	sub := flag.NewFlagSet(fs.Name(), flag.ContinueOnError)
	sub.SetOutput(w)
	fs.VisitAll(func(f *flag.Flag) {
		if keep(f.Name) {
			sub.Var(f.Value, f.Name, f.Usage)
		}
	})
	sub.PrintDefaults()
}

// newLogger writes structured logs to w in the configured format, from the configured level up.
func newLogger(w io.Writer, c config.Config) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.LogLevel}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if c.LogFormat == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	if !c.LogPersonalData {
		h = logprivacy.WithoutPersonalData(h)
	}
	return slog.New(h)
}
