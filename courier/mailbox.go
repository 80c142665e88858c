package courier

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// Mailbox is the sender of the default set-up: each message becomes a file <id>.eml in a
// directory (under the data directory), which `idlog courier ls|show` reads. Writing the same
// message again replaces its file, so a retried delivery leaves one copy. The files hold the codes
// in plain and are private to the owner (0600 in a 0700 directory).
type Mailbox struct {
	Dir  string
	From string
}

// Send implements Sender. An SMS lands in the mailbox too, as a text message to the number.
func (b Mailbox) Send(_ context.Context, e Envelope) error {
	if err := os.MkdirAll(b.Dir, 0o700); err != nil {
		return fmt.Errorf("courier: mailbox: %w", err)
	}
	var buf bytes.Buffer
	if e.Channel == ChannelSMS {
		fmt.Fprintf(&buf, "To: %s\r\nSubject: SMS\r\nDate: %s\r\nMessage-ID: <%s>\r\nX-Idlog-Kind: %s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s",
			e.To, e.CreatedAt.Format(time.RFC1123Z), e.MessageID(), e.Kind, e.Text)
	} else {
		m, err := newMail(b.from(), e, gomail.NoEncoding)
		if err != nil {
			return err
		}
		if _, err := m.WriteTo(&buf); err != nil {
			return fmt.Errorf("courier: mailbox: %w", err)
		}
	}
	name := filepath.Join(b.Dir, e.ID.String()+".eml")
	tmp, err := os.CreateTemp(b.Dir, ".incoming-*")
	if err != nil {
		return fmt.Errorf("courier: mailbox: %w", err)
	}
	defer os.Remove(tmp.Name()) //nolint:errcheck // gone after the rename
	if _, err := tmp.Write(buf.Bytes()); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("courier: mailbox: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("courier: mailbox: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("courier: mailbox: %w", err)
	}
	if err := os.Rename(tmp.Name(), name); err != nil {
		return fmt.Errorf("courier: mailbox: %w", err)
	}
	return nil
}

func (b Mailbox) from() string {
	if b.From == "" {
		return "idlog@localhost"
	}
	return b.From
}

// MailboxEntry is a message in a Mailbox.
type MailboxEntry struct {
	ID      string
	Date    time.Time
	To      string
	Subject string
	Kind    string
	// Text is the plain-text body.
	Text string
}

// List returns the messages of the mailbox, oldest first. A missing directory is an empty mailbox.
func (b Mailbox) List() ([]MailboxEntry, error) {
	names, err := filepath.Glob(filepath.Join(b.Dir, "*.eml"))
	if err != nil {
		return nil, err
	}
	var out []MailboxEntry
	for _, n := range names {
		e, err := readEntry(n)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	slices.SortStableFunc(out, func(a, b MailboxEntry) int {
		if c := a.Date.Compare(b.Date); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// ErrNoMessage: no message of the mailbox has the id asked for.
var ErrNoMessage = errors.New("courier: no such message in the mailbox")

// Show returns the message whose id starts with prefix; the last one if prefix is "".
func (b Mailbox) Show(prefix string) (MailboxEntry, error) {
	all, err := b.List()
	if err != nil {
		return MailboxEntry{}, err
	}
	var found []MailboxEntry
	for _, e := range all {
		if strings.HasPrefix(e.ID, prefix) {
			found = append(found, e)
		}
	}
	switch {
	case len(found) == 0:
		return MailboxEntry{}, fmt.Errorf("%w: %q", ErrNoMessage, prefix)
	case prefix == "" || len(found) == 1:
		return found[len(found)-1], nil
	default:
		return MailboxEntry{}, fmt.Errorf("courier: %d messages start with %q: give more of the id", len(found), prefix)
	}
}

func readEntry(name string) (MailboxEntry, error) {
	raw, err := os.ReadFile(name)
	if err != nil {
		return MailboxEntry{}, err
	}
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return MailboxEntry{}, fmt.Errorf("courier: mailbox file %s: %w", name, err)
	}
	e := MailboxEntry{ID: strings.TrimSuffix(filepath.Base(name), ".eml"), To: m.Header.Get("To"),
		Subject: m.Header.Get("Subject"), Kind: m.Header.Get("X-Idlog-Kind")}
	e.Date, _ = m.Header.Date()
	if e.Text, err = TextBody(m); err != nil {
		return MailboxEntry{}, fmt.Errorf("courier: mailbox file %s: %w", name, err)
	}
	return e, nil
}

// TextBody returns the text/plain part of an e-mail (the whole body if it is not multipart),
// decoded.
func TextBody(m *mail.Message) (string, error) {
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || !strings.HasPrefix(mt, "multipart/") {
		b, err := io.ReadAll(m.Body)
		return string(b), err
	}
	r := multipart.NewReader(m.Body, params["boundary"])
	for {
		p, err := r.NextPart()
		if err == io.EOF {
			return "", errors.New("no text/plain part")
		}
		if err != nil {
			return "", err
		}
		if pt, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type")); pt == "text/plain" {
			b, err := io.ReadAll(p) // multipart decodes quoted-printable itself
			return string(b), err
		}
	}
}
