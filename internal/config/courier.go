package config

import (
	"errors"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/nats-io/nkeys"
)

// Courier are the settings of message delivery (package courier). The zero value delivers e-mail
// to a mailbox directory under the data directory and leaves SMS queued.
type Courier struct {
	// PublicURL starts the links in messages (the frontend that handles /confirm-email?token=
	// and /reset-password?token=); empty means http://<IDLOG_HTTP_ADDR>.
	PublicURL string
	// SMTPURL, when set (smtp://user:password@host:587, smtps://...:465), sends e-mail through
	// that server instead of the mailbox.
	SMTPURL string
	// MailFrom is the sender address of e-mail; empty means idlog@localhost.
	MailFrom string
	// TemplatesDir, when set, holds templates (<locale>/<kind>.tmpl) that override the embedded ones.
	TemplatesDir string
	// NATS hands e-mail messages (kind, address, code) to the NATS notifications subject instead
	// of sending them, for teams with their own mailer.
	NATS bool
	// NATSSealTo, when set, is the mailer's public curve key (an NATS xkey): codes handed to NATS
	// are sealed to it.
	NATSSealTo string
	// SMSURL, when set, receives SMS by HTTP POST in SMSFormat ("twilio" or "webhook").
	SMSURL, SMSFormat, SMSFrom, SMSUser, SMSPassword string
}

// LogValue leaves passwords out.
func (c Courier) LogValue() slog.Value {
	return slog.GroupValue(slog.String("public_url", c.PublicURL), slog.String("smtp_url", RedactURL(c.SMTPURL)),
		slog.String("mail_from", c.MailFrom), slog.String("templates_dir", c.TemplatesDir), slog.Bool("nats", c.NATS), slog.String("nats_seal_to", c.NATSSealTo),
		slog.String("sms_url", RedactURL(c.SMSURL)), slog.String("sms_format", c.SMSFormat), slog.Bool("sms_password", c.SMSPassword != ""))
}

// PublicURL is the URL the links of messages start with.
func (c Config) PublicURL() string {
	if c.Courier.PublicURL != "" {
		return c.Courier.PublicURL
	}
	return "http://" + c.HTTPAddr
}

// MailFrom is the sender address of e-mail.
func (c Config) MailFrom() string {
	if c.Courier.MailFrom != "" {
		return c.Courier.MailFrom
	}
	return "idlog@localhost"
}

// MailboxDir is where e-mail lands when no SMTP server is configured.
func (c Config) MailboxDir() string { return filepath.Join(c.DataDir, "mailbox") }

var courierSettings = []setting{
	{
		env: "IDLOG_PUBLIC_URL", flag: "public-url",
		usage: "`URL` of the frontend that links in e-mail start with (/confirm-email?token=, /reset-password?token=); default http://<http-addr>",
		apply: func(c *Config, v string) error {
			if err := checkURL(v, "http", "https"); err != nil {
				return err
			}
			c.Courier.PublicURL = strings.TrimRight(v, "/")
			return nil
		},
	},
	{
		env: "IDLOG_SMTP_URL", flag: "smtp-url", secret: true,
		usage: "SMTP server `URL` (smtp://user:password@host:587[?tls=required|none], smtps://host:465); empty delivers e-mail to <data-dir>/mailbox (idlog courier ls)",
		apply: func(c *Config, v string) error {
			if err := checkURL(v, "smtp", "smtps"); err != nil {
				return err
			}
			c.Courier.SMTPURL = v
			return nil
		},
	},
	{
		env: "IDLOG_MAIL_FROM", flag: "mail-from",
		usage: "sender `address` of e-mail (default idlog@localhost)",
		apply: func(c *Config, v string) error {
			if !strings.Contains(v, "@") {
				return errors.New("want an e-mail address")
			}
			c.Courier.MailFrom = v
			return nil
		},
	},
	{
		env: "IDLOG_COURIER_TEMPLATES", flag: "courier-templates",
		usage: "`directory` of message templates (<locale>/<kind>.tmpl) overriding the embedded ones",
		apply: func(c *Config, v string) error {
			if strings.TrimSpace(v) != "" {
				c.Courier.TemplatesDir = filepath.Clean(v)
			}
			return nil
		},
	},
	{
		env: "IDLOG_COURIER_NATS", flag: "courier-nats",
		usage: "`true` hands e-mail codes to the NATS notifications subject instead of sending them",
		apply: func(c *Config, v string) error {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return errors.New("want true or false")
			}
			c.Courier.NATS = b
			return nil
		},
	},
	{
		env: "IDLOG_COURIER_NATS_SEAL_TO", flag: "courier-nats-seal-to", hidden: true,
		usage: "the mailer's public curve `xkey` (X...): codes handed to NATS are sealed to it (nkeys Seal), as sealed_token and sealed_by",
		apply: func(c *Config, v string) error {
			if !nkeys.IsValidPublicCurveKey(v) {
				return errors.New("want a public curve key (nk -gen curve -pubout; it starts with X)")
			}
			c.Courier.NATSSealTo = v
			return nil
		},
	},
	{
		env: "IDLOG_SMS_URL", flag: "sms-url", secret: true,
		usage: "`URL` that receives SMS by HTTP POST (a Twilio Messages.json URL, or a webhook); empty keeps SMS queued",
		apply: func(c *Config, v string) error {
			if err := checkURL(v, "http", "https"); err != nil {
				return err
			}
			c.Courier.SMSURL = v
			return nil
		},
	},
	{
		env: "IDLOG_SMS_FORMAT", flag: "sms-format",
		usage: "`format` of SMS requests: twilio (form, basic auth) or webhook (JSON)",
		apply: func(c *Config, v string) error {
			if v != "twilio" && v != "webhook" {
				return errors.New("want twilio or webhook")
			}
			c.Courier.SMSFormat = v
			return nil
		},
	},
	{
		env: "IDLOG_SMS_FROM", flag: "sms-from", usage: "sender `number` or name of SMS",
		apply: func(c *Config, v string) error { c.Courier.SMSFrom = v; return nil },
	},
	{
		env: "IDLOG_SMS_USER", flag: "sms-user", usage: "basic auth `user` of the SMS endpoint (Twilio: the account SID)",
		apply: func(c *Config, v string) error { c.Courier.SMSUser = v; return nil },
	},
	{
		env: "IDLOG_SMS_PASSWORD", flag: "sms-password", usage: "basic auth `password` of the SMS endpoint (Twilio: the auth token)",
		apply: func(c *Config, v string) error { c.Courier.SMSPassword = v; return nil },
	},
}

func init() { settings = append(settings, courierSettings...) }
