package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
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
	cfg, err := loadConfig(fs, args, env)
	if err != nil {
		return err
	}
	url, err := natsClientURL(cfg)
	if err != nil {
		return err
	}
	nc, err := eventbus.Dial(url, "idlog events tail", 5*time.Second)
	if err != nil {
		return cfg.RedactError(err)
	}
	defer nc.Close()
	err = eventbus.Consume(ctx, nc, eventbus.ConsumeOptions{
		Type: *typ, User: *user, FromStart: *fromStart, Durable: *durable, Max: *limit,
	}, func(m eventbus.Message) error {
		line := make([]byte, 0, len(m.Data)+1)
		line = append(append(line, m.Data...), '\n')
		_, err := env.stdout.Write(line)
		return err
	})
	return cfg.RedactError(err)
}

// natsClientURL is where a command reaches NATS: IDLOG_NATS_URL, or the port of the embedded
// server that idlog serve runs with the same configuration.
func natsClientURL(cfg config.Config) (string, error) {
	switch {
	case cfg.NATSURL != "":
		return cfg.NATSURL, nil
	case cfg.NATSNoListen:
		return "", errors.New("IDLOG_NATS_URL is empty and IDLOG_NATS_PORT is none: idlog serve's embedded NATS server opens no port to reach it on")
	case cfg.NATSPort == 0:
		return "", errors.New("IDLOG_NATS_PORT is 0, a port idlog serve chose at start: set IDLOG_NATS_URL to the URL it logged (embedded NATS server listening)")
	default:
		return fmt.Sprintf("nats://127.0.0.1:%d", cfg.NATSPort), nil
	}
}
