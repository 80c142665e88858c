package eventbus

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// ErrCredentials: a NATS credentials file is missing, unreadable, readable by others, or holds no
// user key. The error names the file, never its content.
var ErrCredentials = errors.New("eventbus: NATS credentials")

// User is one of the users of the embedded server. Each authenticates with an NKEY whose seed
// idlog keeps in the credentials directory (CredentialsFile); nobody connects anonymously.
type User string

const (
	// UserIdlog is idlog itself: the only user that may publish on idlog.> and manage streams.
	UserIdlog User = "idlog"
	// UserReader reads IDLOG_EVENTS and IDLOG_AUDIT (idlog events tail, downstream consumers):
	// it may create consumers on them, fetch and acknowledge, and nothing else. It cannot
	// publish on idlog.>, purge or delete, nor read IDLOG_NOTIFICATIONS.
	UserReader User = "reader"
	// UserMailer reads IDLOG_NOTIFICATIONS, the one-shot secrets for mailers and SMS senders,
	// the same way. Its replies must come on MailerInboxPrefix, which no other user may read.
	UserMailer User = "mailer"
)

// MailerInboxPrefix is the inbox prefix the mailer's client must use (nats.go:
// nats.CustomInboxPrefix, nats CLI: --inbox-prefix): notifications are delivered to the mailer's
// inbox, and the reader may subscribe to the default one, _INBOX.>.
const MailerInboxPrefix = "_INBOX_mailer"

// users are the embedded server's users, in the order their files are made.
var users = []User{UserIdlog, UserReader, UserMailer}

// CredentialsFile is the NKEY seed file of user u in dir: nats-<user>.nk.
func CredentialsFile(dir string, u User) string {
	return filepath.Join(dir, "nats-"+string(u)+".nk")
}

// permissions are what each user may do on the embedded server. idlog may do anything; the
// others may only read their streams through the JetStream API. A publish allow list is what
// keeps a reader from $JS.API.STREAM.PURGE, MSG.DELETE, CREATE and UPDATE: they are not on it.
func permissions(u User) *server.Permissions {
	switch u {
	case UserReader:
		return readerPermissions("_INBOX", []string{EventsSubjects, "idlog.audit.>"}, EventsStream, AuditStream)
	case UserMailer:
		return readerPermissions(MailerInboxPrefix, []string{NotificationsSubjects}, NotificationsStream)
	}
	return nil // idlog: everything
}

// readerPermissions let a user consume the streams (ephemeral, ordered or durable consumers, by
// pull), read their messages and subscribe to subjects and to its inbox, and publish nothing else.
func readerPermissions(inbox string, subjects []string, streams ...string) *server.Permissions {
	pub := []string{"$JS.API.INFO"}
	for _, s := range streams {
		pub = append(pub,
			"$JS.API.STREAM.INFO."+s,
			"$JS.API.STREAM.MSG.GET."+s,
			"$JS.API.DIRECT.GET."+s, "$JS.API.DIRECT.GET."+s+".>",
			"$JS.API.CONSUMER.CREATE."+s, "$JS.API.CONSUMER.CREATE."+s+".>",
			"$JS.API.CONSUMER.DURABLE.CREATE."+s+".*",
			"$JS.API.CONSUMER.INFO."+s+".*",
			"$JS.API.CONSUMER.DELETE."+s+".*",
			"$JS.API.CONSUMER.NAMES."+s, "$JS.API.CONSUMER.LIST."+s,
			"$JS.API.CONSUMER.MSG.NEXT."+s+".*",
			"$JS.ACK."+s+".>", "$JS.FC."+s+".>",
		)
	}
	return &server.Permissions{
		// The deny list says it twice: nothing but idlog publishes on idlog's subjects.
		Publish:   &server.SubjectPermission{Allow: pub, Deny: []string{"idlog.>"}},
		Subscribe: &server.SubjectPermission{Allow: append([]string{inbox + ".>"}, subjects...)},
	}
}

// serverUsers loads or makes the seeds of every user in dir and returns the server's users and
// idlog's own key pair, for its in-process connection.
func serverUsers(dir string) ([]*server.NkeyUser, nkeys.KeyPair, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("%w: create the directory %s: %w", ErrCredentials, dir, err)
	}
	var (
		out  []*server.NkeyUser
		self nkeys.KeyPair
	)
	for _, u := range users {
		kp, err := loadOrCreateSeed(CredentialsFile(dir, u), u)
		if err != nil {
			return nil, nil, err
		}
		pub, err := kp.PublicKey()
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %s: %w", ErrCredentials, CredentialsFile(dir, u), err)
		}
		out = append(out, &server.NkeyUser{Nkey: pub, Permissions: permissions(u)})
		if u == UserIdlog {
			self = kp
		}
	}
	return out, self, nil
}

// loadOrCreateSeed reads the user seed at path, or makes one there (mode 0600). A new file is
// written aside and linked into place, so two processes starting at once agree on one seed.
func loadOrCreateSeed(path string, u User) (nkeys.KeyPair, error) {
	if kp, err := readSeed(path); !errors.Is(err, fs.ErrNotExist) {
		return kp, err
	}
	kp, err := nkeys.CreateUser()
	if err != nil {
		return nil, fmt.Errorf("%w: make a key for %s: %w", ErrCredentials, u, err)
	}
	seed, err := kp.Seed()
	if err != nil {
		return nil, fmt.Errorf("%w: make a key for %s: %w", ErrCredentials, u, err)
	}
	content := fmt.Appendf(nil, "# NKEY seed of the user %q of idlog's embedded NATS server. Keep it secret.\n%s\n", u, seed)
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*") // mode 0600
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCredentials, err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(content)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		if err = os.Link(tmp.Name(), path); errors.Is(err, fs.ErrExist) {
			err = nil // another process made it first: use theirs
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%w: write %s: %w", ErrCredentials, path, err)
	}
	return readSeed(path)
}

// readSeed reads a user seed file that only its owner may read.
func readSeed(path string) (nkeys.KeyPair, error) {
	if err := checkPrivate(path); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCredentials, err)
	}
	defer clear(b)
	kp, err := nkeys.ParseDecoratedUserNKey(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %s holds no NKEY user seed: %w", ErrCredentials, path, err)
	}
	return kp, nil
}

// checkPrivate fails unless path exists and neither group nor others may read or write it.
func checkPrivate(path string) error {
	info, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrCredentials, err)
	}
	if info.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("%w: %s has mode %v, want 0600 (chmod 600 it)", ErrCredentials, path, info.Mode().Perm())
	}
	return nil
}

// credentialsOption is the connection option for a credentials file: a .creds file (a user JWT
// and its NKEY seed, for servers in operator mode) or an NKEY seed file (nk -gen user, or one of
// the embedded server's nats-<user>.nk).
func credentialsOption(path string) (nats.Option, error) {
	if err := checkPrivate(path); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCredentials, err)
	}
	defer clear(b)
	if bytes.Contains(b, []byte("BEGIN NATS USER JWT")) {
		if _, err := nkeys.ParseDecoratedUserNKey(b); err != nil {
			return nil, fmt.Errorf("%w: %s holds a user JWT but no NKEY user seed: %w", ErrCredentials, path, err)
		}
		return nats.UserCredentials(path), nil
	}
	opt, err := nats.NkeyOptionFromSeed(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %s holds neither a user JWT nor an NKEY user seed: %w", ErrCredentials, path, err)
	}
	return opt, nil
}
