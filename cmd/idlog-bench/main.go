// Command idlog-bench drives a running idlog over HTTP with a mix of the requests its users send
// (sign-ups, sign-ins, GET /users/me, label changes, wallet spends, activity queries) from N
// concurrent clients, and reports per operation the throughput, latency percentiles and errors by
// status, the projections' lag and the NATS end-to-end lag seen during the run, and, measured in
// the same run, the raw baselines the figures are compared with: a one-row INSERT per transaction
// against the same database, and the argon2id hash bound of password operations.
//
// It talks to loopback addresses only: it is a load generator, and pointing it at someone else's
// server by mistake must not be possible.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		fmt.Fprintf(os.Stderr, "idlog-bench: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	rep, err := bench(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	if cfg.JSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	rep.writeTable(stdout)
	return nil
}
