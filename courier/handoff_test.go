package courier_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/idlog/idlog/commands"
	"github.com/idlog/idlog/courier"
	"github.com/idlog/idlog/eventbus"
)

// TestHandOffToNATS: with the NATS hand-off, a confirmation code reaches the notifications stream
// of a real (embedded, authenticated) NATS server for a mailer of one's own, and completes sign-up.
func TestHandOffToNATS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	srv, err := eventbus.StartServer(eventbus.ServerOptions{StoreDir: dir, CredentialsDir: filepath.Join(dir, "keys")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	signer, err := eventbus.NewEventSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	creds := srv.CredentialsFile(eventbus.UserIdlog)
	client, err := eventbus.NewClient(eventbus.ClientOptions{URL: srv.ClientURL(), Credentials: creds, Signer: signer, DialTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.Close)
	notifier, err := eventbus.NewNotifier(eventbus.NotifierOptions{Client: client})
	if err != nil {
		t.Fatal(err)
	}

	e := newEnv(t, backends()[0])
	ctx := context.Background()
	if _, err := e.app.Commands.RegisterUser.Handle(ctx, commands.RegisterUser{Email: "nats@example.com", Password: "Correct-Horse-9-battery"}); err != nil {
		t.Fatal(err)
	}
	queued := e.queue(t)
	drain(t, e.courier(t, courier.HandOff{Notifier: notifier}, nil))
	if q := e.queue(t); len(q) != 0 {
		t.Fatalf("handed off, still queued: %+v", q)
	}

	opt, err := nats.NkeyOptionFromSeed(creds)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(srv.ClientURL(), opt)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	st, err := js.Stream(ctx, eventbus.NotificationsStream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.GetLastMsgForSubject(ctx, "idlog.notifications."+commands.NotifyEmailConfirmation)
	if err != nil {
		t.Fatal(err)
	}
	var ce struct{ Data eventbus.Notification }
	if err := json.Unmarshal(m.Data, &ce); err != nil {
		t.Fatal(err)
	}
	if ce.Data.To != "nats@example.com" || ce.Data.Payload["id"] != queued[0].ID {
		t.Fatalf("notification %s", m.Data)
	}
	if _, err := e.app.Commands.VerifyEmail.Handle(ctx, commands.VerifyEmail{Token: ce.Data.Payload["token"]}); err != nil {
		t.Fatalf("the handed-off code does not confirm: %v", err)
	}
}

// TestHandOffSealsCodes: with a mailer's curve key set, the code reaches NATS sealed to that key:
// the notification carries no token, and the mailer opens the sealed one, which completes
// sign-up.
func TestHandOffSealsCodes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	srv, err := eventbus.StartServer(eventbus.ServerOptions{StoreDir: dir, CredentialsDir: filepath.Join(dir, "keys")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	signer, err := eventbus.NewEventSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	client, err := eventbus.NewClient(eventbus.ClientOptions{URL: srv.ClientURL(), Credentials: srv.CredentialsFile(eventbus.UserIdlog), Signer: signer, DialTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.Close)
	notifier, err := eventbus.NewNotifier(eventbus.NotifierOptions{Client: client})
	if err != nil {
		t.Fatal(err)
	}
	mailerKey, err := nkeys.CreateCurveKeys()
	if err != nil {
		t.Fatal(err)
	}
	mailerPub, _ := mailerKey.PublicKey()

	e := newEnv(t, backends()[0])
	ctx := context.Background()
	if _, err := e.app.Commands.RegisterUser.Handle(ctx, commands.RegisterUser{Email: "sealed@example.com", Password: "Correct-Horse-9-battery"}); err != nil {
		t.Fatal(err)
	}
	drain(t, e.courier(t, courier.HandOff{Notifier: notifier, SealTo: mailerPub}, nil))

	// The mailer reads with its own NATS user, as README.md says.
	opt, err := nats.NkeyOptionFromSeed(srv.CredentialsFile(eventbus.UserMailer))
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(srv.ClientURL(), opt, nats.CustomInboxPrefix(eventbus.MailerInboxPrefix))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	cons, err := js.OrderedConsumer(ctx, eventbus.NotificationsStream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := cons.Next(jetstream.FetchMaxWait(10 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var ce struct{ Data eventbus.Notification }
	if err := json.Unmarshal(m.Data(), &ce); err != nil {
		t.Fatal(err)
	}
	p := ce.Data.Payload
	if _, ok := p["token"]; ok || p["sealed_token"] == "" || p["sealed_by"] == "" {
		t.Fatalf("payload %v, want sealed_token and sealed_by, no token", p)
	}
	sealed, err := base64.StdEncoding.DecodeString(p["sealed_token"])
	if err != nil {
		t.Fatal(err)
	}
	token, err := mailerKey.Open(sealed, p["sealed_by"])
	if err != nil {
		t.Fatalf("the mailer cannot open the code: %v", err)
	}
	other, _ := nkeys.CreateCurveKeys()
	if _, err := other.Open(sealed, p["sealed_by"]); err == nil {
		t.Error("another key opens the code")
	}
	if _, err := e.app.Commands.VerifyEmail.Handle(ctx, commands.VerifyEmail{Token: string(token)}); err != nil {
		t.Fatalf("the opened code does not confirm: %v", err)
	}
}
