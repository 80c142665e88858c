package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/idlog/idlog/api"
	"github.com/idlog/idlog/auth"
	cmds "github.com/idlog/idlog/commands"
	"github.com/idlog/idlog/courier"
	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/eventstore/postgres"
	"github.com/idlog/idlog/eventstore/sqlite"
	"github.com/idlog/idlog/follower"
	"github.com/idlog/idlog/internal/config"
	"github.com/idlog/idlog/migrations"
)

// postOffice is the courier of serve: the outbox commands queue into and the delivery loop.
type postOffice struct {
	outbox cmds.Outbox // nil: the store keeps no outbox; codes go to the notifier
	lister api.OutboxLister
	stop   func()
}

// startCourier runs the courier beside serve, under a lease (one deliverer across replicas). It
// delivers e-mail by SMTP when IDLOG_SMTP_URL is set, to NATS with IDLOG_COURIER_NATS, and else to
// the mailbox under the data directory; SMS by HTTP when IDLOG_SMS_URL is set. With EventStoreDB
// there is no outbox: codes are handed to the notifier after the append, as before.
func startCourier(ctx context.Context, cfg config.Config, store eventstore.Store, m *readModels, notifier courier.Notifier, leases follower.Lease, log *slog.Logger, metrics prometheus.Registerer) (*postOffice, error) {
	if k, ok := store.(eventstore.OutboxKeeper); !ok || !k.KeepsOutbox() {
		log.Warn("the courier is off: the outbox lives in the SQL event stores (Postgres, SQLite); codes go to NATS")
		return &postOffice{stop: func() {}}, nil
	}
	key, err := auth.LoadOrCreateKey(cfg.SecretKeyPath())
	if err != nil {
		return nil, fmt.Errorf("secret sealing key: %w", err)
	}
	sealer, err := auth.NewSealer(key)
	if err != nil {
		return nil, err
	}
	tpl, err := courier.NewTemplates(cfg.Courier.TemplatesDir, cfg.PublicURL())
	if err != nil {
		return nil, err
	}
	var email courier.Sender
	var closeEmail func()
	switch {
	case cfg.Courier.SMTPURL != "":
		s, err := courier.NewSMTP(courier.SMTPOptions{URL: cfg.Courier.SMTPURL, From: cfg.MailFrom()})
		if err != nil {
			return nil, err
		}
		email, closeEmail = s, func() { _ = s.Close() }
		log.Info("the courier sends e-mail by SMTP", "smtp_url", config.RedactURL(cfg.Courier.SMTPURL))
	case cfg.Courier.NATS:
		email = courier.HandOff{Notifier: notifier, SealTo: cfg.Courier.NATSSealTo}
		switch {
		case cfg.Courier.NATSSealTo != "":
			log.Info("the courier hands e-mail codes to NATS, sealed to the mailer's key", "seal_to", cfg.Courier.NATSSealTo)
		case cfg.NATSURL != "":
			log.Warn("the courier hands e-mail codes to an external NATS server in plain: whoever its operator lets read idlog.notifications.> reads them; set IDLOG_COURIER_NATS_SEAL_TO to seal them")
		default:
			log.Info("the courier hands e-mail codes to NATS; only the embedded server's mailer user reads them")
		}
	default:
		email = courier.Mailbox{Dir: cfg.MailboxDir(), From: cfg.MailFrom()}
		log.Info("the courier delivers e-mail to the local mailbox (read it with idlog courier ls); set IDLOG_SMTP_URL to send it", "mailbox", cfg.MailboxDir())
	}
	var sms courier.Sender
	if cfg.Courier.SMSURL != "" {
		format := cfg.Courier.SMSFormat
		if format == "" {
			format = courier.SMSWebhook
		}
		if sms, err = courier.NewSMS(courier.SMSOptions{Format: format, URL: cfg.Courier.SMSURL, From: cfg.Courier.SMSFrom,
			User: cfg.Courier.SMSUser, Password: cfg.Courier.SMSPassword}); err != nil {
			return nil, err
		}
	}
	if sms == nil {
		switch e := email.(type) {
		case courier.Mailbox:
			sms = e // the default set-up: text messages land in the mailbox too
		case courier.HandOff:
			sms = e // a team's own mailer takes the phone codes as it takes the e-mail ones
		}
	}
	outbox := courier.Outbox{Sealer: sealer}
	c, err := courier.New(courier.Options{DB: m.db.DB, Dialect: m.dialect, Outbox: outbox, Templates: tpl, Email: email, SMS: sms,
		Lease: leases, Logger: log, Metrics: metrics})
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = c.Run(cctx) // it logs its failures and retries; it returns when stopped
	}()
	return &postOffice{outbox: wakingOutbox{outbox, c}, lister: courier.Lister{DB: m.db.DB, Dialect: m.dialect, Wake: c.Wake}, stop: func() {
		cancel()
		<-done
		if closeEmail != nil {
			closeEmail()
		}
	}}, nil
}

// wakingOutbox seals for the outbox and wakes this process's courier once an append queued
// messages, so they go out at once (another replica's courier finds them at its next poll).
type wakingOutbox struct {
	courier.Outbox
	c *courier.Courier
}

func (w wakingOutbox) Queued() { w.c.Wake() }

var courierCommand = command{name: "courier", summary: "read the local mailbox (courier ls, courier show [id]) and the outbox (courier queue)", run: courierMain}

const courierUsage = `Usage:
  idlog courier ls [flags]         list the messages in the local mailbox (<data-dir>/mailbox)
  idlog courier show [id] [flags]  print a message of the mailbox (the last one without an id)
  idlog courier queue [flags]      list the messages waiting for delivery, without their content
`

func courierMain(ctx context.Context, env *environment, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(env.stderr, courierUsage)
		return errUsage
	}
	switch args[0] {
	case "ls":
		return courierList(env, args[1:])
	case "show":
		return courierShow(env, args[1:])
	case "queue":
		return courierQueue(ctx, env, args[1:])
	case "-h", "-help", "--help", "help":
		fmt.Fprint(env.stderr, courierUsage)
		return flag.ErrHelp
	default:
		fmt.Fprint(env.stderr, courierUsage)
		return errUsage
	}
}

func courierList(env *environment, args []string) error {
	cfg, err := loadConfig(flag.NewFlagSet("courier ls", flag.ContinueOnError), args, env)
	if err != nil {
		return err
	}
	all, err := courier.Mailbox{Dir: cfg.MailboxDir()}.List()
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tDATE\tTO\tSUBJECT")
	for _, e := range all {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", e.ID, e.Date.UTC().Format(time.RFC3339), e.To, e.Subject)
	}
	return w.Flush()
}

func courierShow(env *environment, args []string) error {
	id := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		id, args = args[0], args[1:]
	}
	cfg, err := loadConfig(flag.NewFlagSet("courier show", flag.ContinueOnError), args, env)
	if err != nil {
		return err
	}
	e, err := courier.Mailbox{Dir: cfg.MailboxDir()}.Show(id)
	if errors.Is(err, courier.ErrNoMessage) && id == "" {
		return fmt.Errorf("the mailbox %s is empty", cfg.MailboxDir())
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "ID:      %s\nDate:    %s\nTo:      %s\nSubject: %s\n\n%s", e.ID, e.Date.UTC().Format(time.RFC3339), e.To, e.Subject, e.Text)
	if !strings.HasSuffix(e.Text, "\n") {
		fmt.Fprintln(env.stdout)
	}
	return nil
}

func courierQueue(ctx context.Context, env *environment, args []string) error {
	cfg, err := loadConfig(flag.NewFlagSet("courier queue", flag.ContinueOnError), args, env)
	if err != nil {
		return err
	}
	log := newLogger(env.stderr, cfg)
	store, err := openStore(ctx, cfg, log)
	if err != nil {
		return cfg.RedactError(err)
	}
	defer store.Close()
	var db *sql.DB
	var dialect migrations.Dialect
	switch s := store.(type) {
	case *postgres.Store:
		db, dialect = s.DB().DB, migrations.Postgres
	case *sqlite.Store:
		db, dialect = s.DB().DB, migrations.SQLite
	default:
		return fmt.Errorf("the outbox lives in the SQL event stores (Postgres or SQLite), not in %T", store)
	}
	q, err := courier.Queue(ctx, db, dialect, 1000)
	if err != nil {
		return cfg.RedactError(err)
	}
	w := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tKIND\tCHANNEL\tUID\tCREATED\tATTEMPTS\tDEAD\tLAST ERROR")
	for _, m := range q {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%t\t%s\n", m.ID, m.Kind, m.Channel, m.UID, m.CreatedAt.Format(time.RFC3339), m.Attempts, m.Dead, m.LastError)
	}
	return w.Flush()
}
