package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/idlog/idlog/api"
	"github.com/idlog/idlog/eventstore"
)

var serveCommand = command{name: "serve", summary: "run the HTTP server", run: serve}

func serve(ctx context.Context, env *environment, args []string) error {
	cfg, err := loadConfig(flag.NewFlagSet("serve", flag.ContinueOnError), args, env)
	if err != nil {
		return err
	}
	log := newLogger(env.stderr, cfg)
	log.Info("starting", "config", cfg, "eventstore", cfg.EventStore())
	if err := prepareDataDir(cfg.DataDir, log); err != nil {
		return err
	}
	unclaimed, err := checkDataDir(cfg)
	if err != nil {
		return err
	}

	store, err := openStoreWith(ctx, cfg, log, serveTimeouts(cfg))
	if err != nil {
		return cfg.RedactError(fmt.Errorf("open %s event store: %w", cfg.EventStore(), err))
	}
	// Closed after the HTTP server has drained, so no in-flight request loses its store.
	defer func() {
		if err := store.Close(); err != nil {
			log.Error("close event store", "error", cfg.RedactError(err))
		}
	}()
	if unclaimed {
		if err := claimDataDir(cfg); err != nil {
			return err
		}
	}

	// Commands, read models and the API see users' personal data opened (or erased). The audit
	// sealer and the NATS relay read the stored, sealed bytes: IDLOG_EVENTS is append-only (no
	// purge, by design), so it must never receive personal data in plain; after an erasure what
	// it holds of the user can no longer be opened.
	sealed, closeSealing, err := sealPersonalData(ctx, cfg, store)
	if err != nil {
		return cfg.RedactError(fmt.Errorf("personal data: %w", err))
	}
	defer closeSealing()

	leases, closeLeases, err := openLeases(ctx, cfg, store, log)
	if err != nil {
		return cfg.RedactError(fmt.Errorf("follower leases: %w", err))
	}
	defer closeLeases()
	if err := refuseSharedEmbeddedNATS(ctx, cfg, store, leases); err != nil {
		return cfg.RedactError(err)
	}

	metrics := prometheus.NewRegistry()
	metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if err := watchHorizon(ctx, store, log, metrics); err != nil {
		return fmt.Errorf("watch the read horizon: %w", err)
	}
	bus, err := startEventBus(ctx, cfg, store, leases, log, metrics)
	if err != nil {
		return cfg.RedactError(fmt.Errorf("event bus: %w", err))
	}
	// Closed after the HTTP server has drained and before the store: the relay publishes while
	// requests drain, then saves its checkpoint; what it did not reach waits for the next start.
	defer bus.close()
	models, err := openReadModels(ctx, cfg, sealed, leases, log, metrics, 0)
	if err != nil {
		return cfg.RedactError(fmt.Errorf("read models: %w", err))
	}
	// Stopped after the HTTP server has drained (requests may wait for the read models), and
	// before the store closes.
	defer models.close()
	// Read-model queries on a streaming replica of the database, when one is set.
	if err := models.useReadReplica(ctx, cfg, log, metrics); err != nil {
		return cfg.RedactError(err)
	}
	// After a failover another replica publishes: consumers must verify its events with the same key.
	if err := agreeOnEventsKey(models.db, log, bus.signer); err != nil {
		return cfg.RedactError(err)
	}
	if err := models.runtime.Start(context.WithoutCancel(ctx)); err != nil {
		return cfg.RedactError(fmt.Errorf("start the projections: %w", err))
	}
	ledger, stopSealer, err := startSealer(ctx, cfg, store, models.db, bus.client, leases, log, metrics)
	if err != nil {
		return cfg.RedactError(fmt.Errorf("audit sealer: %w", err))
	}
	defer stopSealer()
	// Stopped after the HTTP server has drained: what it did not deliver waits in the outbox.
	post, err := startCourier(ctx, cfg, store, models, bus.notifier, leases, log, metrics)
	if err != nil {
		return cfg.RedactError(fmt.Errorf("courier: %w", err))
	}
	defer post.stop()
	accounts, err := newAccounts(cfg, log, sealed, bus.notifier, models, metrics, post.outbox)
	if err != nil {
		return cfg.RedactError(fmt.Errorf("accounts: %w", err))
	}
	closeGatekeeper, err := startGatekeeper(ctx, cfg, log, accounts)
	if err != nil {
		return cfg.RedactError(fmt.Errorf("gatekeeper: %w", err))
	}
	defer closeGatekeeper()
	handler := api.NewServer(api.Options{
		Logger:  log,
		Metrics: metrics,
		Views: &api.Views{Activity: models.reads.activity, Projections: models.runtime, Events: sealed, Ledger: ledger,
			Outbox: post.lister},
		Accounts: accounts,
		Version:  version(),
		// Browser apps on these origins may call with credentials.
		CORSOrigins: cfg.Accounts.CORSOriginList(),
		// The public key of the events' signatures, for consumers of NATS.
		EventKeys: new(bus.signer.JWKS()),
		// Read-your-writes waits inside it have their own, shorter bound.
		RequestTimeout: cfg.RequestTimeout,
		Ready: []api.Check{
			{Name: "eventstore", Check: func(ctx context.Context) error { return cfg.RedactError(pingStore(ctx, store)) }},
			// Commands keep working while NATS is away (events wait in the store): degraded, not down.
			{Name: "nats", Check: func(ctx context.Context) error { return cfg.RedactError(bus.check(ctx)) }, Optional: true, Details: bus.details},
		},
	})

	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.HTTPAddr, err)
	}
	log.Info("listening", "addr", ln.Addr().String())
	if err := serveHTTP(ctx, log, ln, handler, cfg.ShutdownTimeout); err != nil {
		return err
	}
	log.Info("stopped")
	return nil
}

// readinessStream is a stream nobody writes: reading it costs the engine one lookup.
const readinessStream = "idlog-readiness-probe"

// pingStore checks that the event store answers, through the Store contract alone so every
// engine is probed the same way.
func pingStore(ctx context.Context, s eventstore.Store) error {
	for _, err := range s.ReadStream(ctx, readinessStream, 0) {
		if err != nil {
			return err
		}
	}
	return nil
}

// serveHTTP serves h on ln until ctx ends, then shuts down gracefully: it stops accepting, lets
// in-flight requests finish for up to timeout, and cuts those still running after it.
func serveHTTP(ctx context.Context, log *slog.Logger, ln net.Listener, h http.Handler, timeout time.Duration) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second, // slow-header clients cannot pin connections
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	select {
	case err := <-served:
		return fmt.Errorf("serve http: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down", "timeout", timeout)
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
		return fmt.Errorf("shutdown: requests still running after %s were cut: %w", timeout, err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve http: %w", err)
	}
	return nil
}
