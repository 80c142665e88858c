package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/idlog/idlog/eventbus"
	"github.com/idlog/idlog/internal/config"
)

var eventsCommand = command{name: "events", summary: "follow the events on NATS (events tail); export or import the log", run: events}

func events(ctx context.Context, env *environment, args []string) error {
	if len(args) > 0 && args[0] == "tail" {
		return eventsTail(ctx, env, args[1:])
	}
	eventsUsage(env.stderr)
	if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help") {
		return flag.ErrHelp
	}
	return errUsage
}

func eventsUsage(w io.Writer) {
	fmt.Fprint(w, "Usage: idlog events tail [flags]\n\n"+
		"Prints the events of the IDLOG_EVENTS stream as they are published, one CloudEvent\n"+
		"(JSON) a line. Run idlog events tail -h for the flags.\n")
}

// eventsTail is a JetStream consumer printing NDJSON until interrupted (or -max events).
func eventsTail(ctx context.Context, env *environment, args []string) error {
	fs := flag.NewFlagSet("events tail", flag.ContinueOnError)
	typ := fs.String("type", "", "only events of this `type`, e.g. UserRegistered")
	user := fs.String("user", "", "only the events of the user with this `uid`, e.g. ID1A2B3C4D5E")
	fromStart := fs.Bool("from-start", false, "start with the oldest event the stream holds (default: the next one published)")
	durable := fs.String("durable", "", "`name` of a durable consumer: a later run with the same name resumes after the last event printed")
	limit := fs.Int("max", 0, "stop after `n` events (0: until interrupted)")
	keysFrom := fs.String("keys", "", "JWKS `file or URL` of the keys the events must be signed with (default <data-dir>/keys/events-jwks.json, which idlog serve writes; or its /.well-known/events-jwks.json)")
	cfg, err := loadConfig(fs, args, env)
	if err != nil {
		return err
	}
	url, err := natsClientURL(cfg)
	if err != nil {
		return err
	}
	a := cfg.NATSAuth
	opts := eventbus.ClientOptions{
		URL: url, Name: "idlog events tail", DialTimeout: 5 * time.Second,
		Credentials: a.Credentials, TLSCAFile: a.TLSCA, TLSCertFile: a.TLSCert, TLSKeyFile: a.TLSKey,
	}
	if cfg.NATSURL == "" {
		// The embedded server of idlog serve: its reader's credentials, in the same data directory.
		opts.Credentials = eventbus.CredentialsFile(cfg.NATSCredentialsDir(), eventbus.UserReader)
	}
	nc, err := eventbus.Dial(opts)
	if err != nil {
		return cfg.RedactError(err)
	}
	defer nc.Close()
	if *keysFrom == "" {
		*keysFrom = cfg.EventsKeysPath()
	}
	keys, err := loadEventKeys(ctx, *keysFrom)
	if err != nil {
		return err
	}
	err = eventbus.Consume(ctx, nc, eventbus.ConsumeOptions{
		Type: *typ, User: *user, FromStart: *fromStart, Durable: *durable, Max: *limit, Keys: keys,
		Rejected: func(m eventbus.Message, err error) {
			fmt.Fprintf(env.stderr, "idlog events tail: skipped message %d on %s: %v\n", m.Sequence, m.Subject, err)
		},
	}, func(m eventbus.Message) error {
		line := make([]byte, 0, len(m.Data)+1)
		line = append(append(line, m.Data...), '\n')
		_, err := env.stdout.Write(line)
		return err
	})
	return cfg.RedactError(err)
}

// natsClientURL is where a command reaches NATS: IDLOG_NATS_URL, or the embedded server that
// idlog serve runs with the same data directory (the URL it recorded there, else its port).
func natsClientURL(cfg config.Config) (string, error) {
	if cfg.NATSURL != "" {
		return cfg.NATSURL, nil
	}
	if !cfg.NATSNoListen {
		if url, err := readNATSURL(cfg); err != nil || url != "" {
			return url, err
		}
	}
	switch {
	case cfg.NATSNoListen:
		return "", errors.New("IDLOG_NATS_URL is empty and IDLOG_NATS_PORT is none: idlog serve's embedded NATS server opens no port to reach it on")
	case cfg.NATSPort == 0:
		return "", errors.New("IDLOG_NATS_PORT is 0, a port idlog serve chose at start: set IDLOG_NATS_URL to the URL it logged (embedded NATS server listening)")
	default:
		return fmt.Sprintf("nats://127.0.0.1:%d", cfg.NATSPort), nil
	}
}

// loadEventKeys reads the JWKS of the events' keys from a file or an http(s) URL.
func loadEventKeys(ctx context.Context, from string) (eventbus.EventKeys, error) {
	var doc []byte
	if strings.HasPrefix(from, "http://") || strings.HasPrefix(from, "https://") {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, from, nil)
		if err != nil {
			return nil, fmt.Errorf("events keys: %w", err)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, fmt.Errorf("events keys: %w", err)
		}
		defer res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("events keys: GET %s answered %s", from, res.Status)
		}
		if doc, err = io.ReadAll(io.LimitReader(res.Body, 1<<20)); err != nil {
			return nil, fmt.Errorf("events keys: %w", err)
		}
	} else {
		var err error
		if doc, err = os.ReadFile(from); err != nil {
			return nil, fmt.Errorf("events keys: %w: run idlog serve once with this data directory, or give -keys the file or URL of idlog's /.well-known/events-jwks.json", err)
		}
	}
	keys, err := eventbus.ParseEventKeys(doc)
	if err != nil {
		return nil, fmt.Errorf("events keys from %s: %w", from, err)
	}
	return keys, nil
}
