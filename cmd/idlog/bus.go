package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/idlog/idlog/auth"
	"github.com/idlog/idlog/eventbus"
	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/follower"
	"github.com/idlog/idlog/internal/config"
)

// natsStartWait bounds how long serve waits for an external NATS server at start before it goes
// on without it; the relay keeps trying.
const natsStartWait = 5 * time.Second

// eventBus is serve's side of NATS: the embedded server unless IDLOG_NATS_URL names one, the
// connection, the relay, and the notifier that commands hand one-shot secrets to.
type eventBus struct {
	log      *slog.Logger
	server   *eventbus.Server // nil with IDLOG_NATS_URL
	signer   *eventbus.EventSigner
	client   *eventbus.Client
	relay    *eventbus.Relay
	notifier *eventbus.Notifier
	stop     context.CancelFunc
	done     chan struct{}
	cfg      config.Config
	natsURL  string // the embedded server's, recorded in the data directory (nats_url.go)
}

// startEventBus starts the embedded NATS server unless cfg names one, connects, and starts the
// relay. An external server that does not answer does not stop idlog: the error is logged, the
// events wait in the store, and the relay publishes them once NATS answers.
func startEventBus(ctx context.Context, cfg config.Config, store eventstore.Store, leases follower.Lease, log *slog.Logger, metrics prometheus.Registerer) (*eventBus, error) {
	checkpoints, ok := store.(eventstore.Checkpoints)
	if !ok {
		return nil, fmt.Errorf("the %s event store keeps no checkpoints, which the NATS relay needs", cfg.EventStore())
	}
	signer, err := loadEventSigner(cfg)
	if err != nil {
		return nil, err
	}
	b := &eventBus{log: log, signer: signer, cfg: cfg}
	a := cfg.NATSAuth
	copts := eventbus.ClientOptions{
		URL: cfg.NATSURL, Credentials: a.Credentials, TLSCAFile: a.TLSCA, TLSCertFile: a.TLSCert, TLSKeyFile: a.TLSKey,
		Signer: signer, Logger: log,
	}
	if cfg.NATSURL == "" {
		sopts := eventbus.ServerOptions{
			StoreDir: cfg.NATSStoreDir(), CredentialsDir: cfg.NATSCredentialsDir(),
			Port: cfg.NATSPort, NoListen: cfg.NATSNoListen, Logger: log,
		}
		srv, err := eventbus.StartServer(sopts)
		if errors.Is(err, eventbus.ErrPortInUse) && !cfg.NATSPortChosen {
			// Nobody asked for the default port, and something (often a NATS server of the
			// machine's own) holds it: `idlog serve` with no configuration must still start.
			log.Warn("the default NATS port is in use; the embedded NATS server takes a free port instead: set IDLOG_NATS_PORT to choose one, or IDLOG_NATS_URL to use the server on that port",
				"port", cfg.NATSPort)
			sopts.Port = 0
			srv, err = eventbus.StartServer(sopts)
		}
		if errors.Is(err, eventbus.ErrPortInUse) {
			return nil, fmt.Errorf("IDLOG_NATS_PORT %d is in use, perhaps by a NATS server already running: set IDLOG_NATS_PORT (-nats-port) to a free port, 0 for any, or none for no port; or set IDLOG_NATS_URL=nats://127.0.0.1:%d to use that server: %w",
				cfg.NATSPort, cfg.NATSPort, err)
		}
		if err != nil {
			return nil, err
		}
		b.server = srv
		copts = eventbus.ClientOptions{Server: srv, Signer: signer, Logger: log}
		if url := srv.ClientURL(); url != "" {
			if err := writeNATSURL(cfg, url); err != nil {
				log.Warn("idlog events tail will not find the embedded NATS server", "error", err)
			}
			b.natsURL = url
			log.Info("embedded NATS server listening", "url", srv.ClientURL(), "store_dir", cfg.NATSStoreDir(),
				"reader_credentials", srv.CredentialsFile(eventbus.UserReader), "mailer_credentials", srv.CredentialsFile(eventbus.UserMailer))
		} else {
			log.Info("embedded NATS server started without a port", "store_dir", cfg.NATSStoreDir())
		}
	}
	fail := func(err error) (*eventBus, error) {
		b.close()
		return nil, err
	}
	if b.client, err = eventbus.NewClient(copts); err != nil {
		return fail(err)
	}
	wctx, cancel := context.WithTimeout(ctx, natsStartWait)
	_, err = b.client.Conn(wctx)
	cancel()
	switch {
	case err != nil && b.server != nil:
		return fail(fmt.Errorf("connect to the embedded NATS server: %w", err))
	case err != nil:
		log.Error("NATS does not answer; events wait in the event store and the relay publishes them once it does", "error", cfg.RedactError(err))
	}
	b.relay, err = eventbus.NewRelay(eventbus.RelayOptions{
		Store: store, Checkpoints: checkpoints, Client: b.client,
		MaxAge: cfg.NATSMaxAge, MaxBytes: cfg.NATSMaxBytes, DuplicateWindow: cfg.NATSDuplicateWindow,
		Logger: log, Lease: leases,
	})
	if err != nil {
		return fail(err)
	}
	if b.notifier, err = eventbus.NewNotifier(eventbus.NotifierOptions{Client: b.client}); err != nil {
		return fail(err)
	}
	if err := metrics.Register(b.relay); err != nil {
		return fail(fmt.Errorf("register relay metrics: %w", err))
	}
	// The relay outlives serve's context: it keeps publishing while HTTP requests drain, and
	// close stops it.
	rctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	b.stop, b.done = stop, make(chan struct{})
	go func() {
		defer close(b.done)
		_ = b.relay.Run(rctx) // it returns when stopped, having saved its checkpoint
	}()
	return b, nil
}

// check is the readiness check "nats": NATS answers and the relay publishes.
func (b *eventBus) check(ctx context.Context) error { return b.relay.Check(ctx) }

// details is what /readyz shows of the relay: how far behind it is and whether NATS answers.
func (b *eventBus) details() any {
	st := b.relay.Status()
	return map[string]any{
		"connected": st.Connected, "position": st.Position,
		"lag_events": st.LagEvents, "lag_seconds": st.LagSeconds,
		"state": st.State, "owner": st.Owner, // which replica publishes; the others stand by
	}
}

// close stops the relay (which saves its checkpoint), the connection, then the embedded server.
func (b *eventBus) close() {
	if b.stop != nil {
		b.stop()
		<-b.done
	}
	if b.client != nil {
		b.client.Close()
	}
	if b.server != nil {
		b.server.Shutdown()
		if b.natsURL != "" {
			removeNATSURL(b.cfg, b.natsURL)
		}
	}
}

// loadEventSigner loads the key that signs the events (made at the first start) and writes its
// public half, as a JWKS, into the data directory for consumers on this machine. The keys that
// file held are kept in it after the current one: events signed before a key change still verify.
func loadEventSigner(cfg config.Config) (*eventbus.EventSigner, error) {
	key, err := auth.LoadOrCreateSigningKey(cfg.EventsSigningKeyPath())
	if err != nil {
		return nil, fmt.Errorf("events signing key: %w", err)
	}
	var previous []ed25519.PublicKey
	if doc, err := os.ReadFile(cfg.EventsKeysPath()); err == nil {
		keys, err := eventbus.ParseEventKeys(doc)
		if err != nil {
			return nil, fmt.Errorf("the events' public keys in %s: %w", cfg.EventsKeysPath(), err)
		}
		for _, k := range keys {
			previous = append(previous, k)
		}
		// The order of a map's keys is random; the JWKS lists the previous keys in a stable one.
		slices.SortFunc(previous, func(a, b ed25519.PublicKey) int { return bytes.Compare(a, b) })
	}
	signer, err := eventbus.NewEventSigner(key, previous...)
	if err != nil {
		return nil, err
	}
	doc, err := json.MarshalIndent(signer.JWKS(), "", "  ")
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(cfg.EventsKeysPath(), append(doc, '\n')); err != nil {
		return nil, fmt.Errorf("write the events' public key: %w", err)
	}
	return signer, nil
}

// writeFileAtomic replaces path with content (mode 0600): a reader sees the old file or the new.
func writeFileAtomic(path string, content []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(content)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
