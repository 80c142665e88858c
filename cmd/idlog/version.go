package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"time"
)

var versionCommand = command{name: "version", summary: "print the version stamped at build time (also --version)", run: printVersion}

func printVersion(_ context.Context, env *environment, args []string) error {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	fmt.Fprintf(env.stdout, "idlog %s\n", version())
	return nil
}

var healthcheckCommand = command{name: "healthcheck", summary: "exit 0 if the idlog serve of this configuration answers /healthz (-ready: /readyz); for container health checks", run: healthcheck}

// healthcheck asks the server the configuration points at whether it is alive (or ready): a
// distroless image has no curl or wget for a Docker HEALTHCHECK.
func healthcheck(ctx context.Context, env *environment, args []string) error {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	ready := fs.Bool("ready", false, "ask /readyz (ready to serve: store, read models) instead of /healthz (alive)")
	url := fs.String("url", "", "base `URL` of the server (default: IDLOG_HTTP_ADDR, on loopback when it listens on every interface)")
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for the answer")
	cfg, err := loadConfig(fs, args, env)
	if err != nil {
		return err
	}
	base := *url
	if base == "" {
		base = loopbackURL(cfg.HTTPAddr)
	}
	path := "/healthz"
	if *ready {
		path = "/readyz"
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
	if err != nil {
		return err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("unhealthy: %w", err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("unhealthy: GET %s answered %s", base+path, res.Status)
	}
	fmt.Fprintf(env.stdout, "healthy: GET %s answered %s\n", base+path, res.Status)
	return nil
}

// loopbackURL is the base URL of a server listening on addr, reached from the same host.
func loopbackURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://" + addr
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return "http://" + net.JoinHostPort(host, port)
}
