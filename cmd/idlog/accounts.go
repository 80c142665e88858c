package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/idlog/idlog/api"
	"github.com/idlog/idlog/apikeys"
	"github.com/idlog/idlog/attempts"
	"github.com/idlog/idlog/auth"
	"github.com/idlog/idlog/blobs"
	cmds "github.com/idlog/idlog/commands"
	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/eventstore/postgres"
	"github.com/idlog/idlog/idempotency"
	"github.com/idlog/idlog/internal/config"
	"github.com/idlog/idlog/lease"
	"github.com/idlog/idlog/projections"
)

// newAccounts builds what the account routes need: the keys (made in the data directory on the
// first start), the password hasher, the token signer and the command handlers, over the store,
// the read models and the runtime that keeps them. notifier receives the one-shot codes. The
// attempt limiter keeps its counters in the read models' database (the store's, but for
// EventStoreDB), so replicas on it share them.
// outbox, when not nil, receives the messages of the commands instead (see startCourier).
func newAccounts(cfg config.Config, log *slog.Logger, store eventstore.Store, notifier cmds.Notifier, m *readModels, metrics prometheus.Registerer, outbox cmds.Outbox) (*api.Accounts, error) {
	keys, ok := store.(eventstore.KeyOwners)
	if !ok {
		return nil, fmt.Errorf("the %s event store cannot find users by email (no KeyOwners)", cfg.EventStore())
	}
	signingKey, err := auth.LoadOrCreateSigningKey(cfg.SigningKeyPath())
	if err != nil {
		return nil, fmt.Errorf("token signing key: %w", err)
	}
	secretKey, err := auth.LoadOrCreateKey(cfg.SecretKeyPath())
	if err != nil {
		return nil, fmt.Errorf("secret sealing key: %w", err)
	}
	sealer, err := auth.NewSealer(secretKey)
	if err != nil {
		return nil, err
	}
	a := cfg.Accounts
	previous, err := previousSigningKeys(cfg, log)
	if err != nil {
		return nil, err
	}
	if err := agreeOnKeys(m.db, log, signingKey, previous, secretKey); err != nil {
		return nil, err
	}
	signer, err := auth.NewSigner(signingKey, auth.SignerConfig{Issuer: a.TokenIssuer, Audience: a.TokenAudience, TTL: a.TokenTTL,
		PreviousKeys: previous, PreviousKeysUntil: a.SigningKeyPreviousUntil})
	if err != nil {
		return nil, err
	}
	hasher, err := auth.NewPasswordHasher(a.Argon2)
	if err != nil {
		return nil, err
	}
	m.costClasses = keepCostClasses(m.passwordClasses, hasher, log)
	var levels domain.Levels // the zero ladder is the default one
	if a.Levels != "" {
		if levels, err = domain.ParseLevels(a.Levels); err != nil {
			return nil, err // config checked it already
		}
	}
	limiter, err := attempts.New(attempts.Options{DB: m.db, Dialect: m.dialect, Metrics: metrics})
	if err != nil {
		return nil, err
	}
	// Replicas on one PostgreSQL database queue one user's wallet commands across them too.
	var userLocks cmds.UserLocks
	if pg, ok := rawStore(store).(*postgres.Store); ok {
		userLocks = lease.NewUserLocks(pg.DB().DB, pg.DB().Stats().MaxOpenConnections/2)
	}
	if a.EraseOnDelete && eraserOf(store) == nil {
		return nil, fmt.Errorf("IDLOG_ERASE_ON_DELETE needs an event store that seals personal data (PostgreSQL or SQLite), not %s", cfg.EventStore())
	}
	app, err := cmds.New(cmds.Deps{
		Store: store, Keys: keys, Registry: domain.NewEventRegistry(), Hasher: hasher, Sealer: sealer, Tokens: signer,
		Notifier: cmds.LogNotifier{Logger: log, Next: notifier}, Attempts: limiter, UserLocks: userLocks, Outbox: outbox,
		Eraser: eraserOf(store),
	}, cmds.Config{
		Streams: cmds.StreamsConfig{Levels: levels, MaxSessions: a.MaxSessions, SnapshotEvery: a.SnapshotEvery},
		Wallet:  cmds.WalletConfig{SignupBonus: a.SignupBonus},
		Codes:   cmds.CodesConfig{EmailTokenTTL: a.EmailTokenTTL, ResetTokenTTL: a.ResetTokenTTL, Logger: log},
		SignIn: cmds.SignInConfig{
			MaxFailures: orNever(a.SignInMaxFailures), Lockout: a.SignInLockout,
			AddressMaxFailures: orNever(a.SignInAddressMaxFailures), AddressWindow: a.SignInAddressWindow,
			Logger: log,
		},
		Limits:        cmds.LimitsConfig{Logger: log},
		Sessions:      cmds.SessionsConfig{IdleTimeout: a.SessionIdleTimeout, MaxLifetime: a.SessionMaxLifetime},
		EraseOnDelete: a.EraseOnDelete,
	})
	if err != nil {
		return nil, err
	}
	// Documents' files, outside the event log: a directory (under the data dir by default), or
	// an S3-compatible bucket that every replica shares.
	var blobStore blobs.Store
	if cfg.Blobs.S3URL != "" {
		o, err := blobs.ParseS3URL(cfg.Blobs.S3URL)
		if err == nil {
			blobStore, err = blobs.NewS3(o)
		}
		if err != nil {
			return nil, fmt.Errorf("blob store: %w", err)
		}
	} else if blobStore, err = blobs.NewDir(cfg.BlobDir()); err != nil {
		return nil, err
	}
	keyAuth, err := apikeys.New(apikeys.Options{Keys: app.APIKeyInfo, Limiter: limiter, DB: m.db, Dialect: m.dialect, Window: a.Gatekeeper.NonceWindow})
	if err != nil {
		return nil, err
	}
	introspectClients, err := a.Gatekeeper.IntrospectClientMap()
	if err != nil {
		return nil, err
	}
	kyc := &api.KYC{Records: m.kyc, Blobs: blobStore}
	if sweeper := startBlobSweeper(m, blobStore, log); sweeper != nil {
		kyc.Sweeper = sweeper
	}
	log.Info("accounts ready", "signing_key", cfg.SigningKeyPath(), "kid", signer.KeyID(), "secret_key", cfg.SecretKeyPath())
	return &api.Accounts{
		App: app, Users: usersView{m.reads.users}, Tokens: signer, Projections: m.reads.waiter,
		Labels: m.reads.labels, Wallets: m.reads.wallet, Profiles: m.reads.profiles, UserProfiles: m.userProfiles,
		KYC: kyc,
		Admin: &api.AdminUsers{
			Users: m.reads.users, Activity: m.reads.activity, Metrics: m.reads.activity,
			// GET /api/v2/admin/users/{uid}?as_of= folds the user's events up to then.
			UserAsOf: func(current http.Handler) http.Handler { return api.AdminUserAsOfHandler(store, nil, log, current) },
		},
		ReadYourWrites: a.ReadYourWrites, TrustForwardedFor: a.TrustForwardedFor,
		SessionList: m.sessions, SessionCookies: a.SessionCookies, SecureCookies: a.SecureCookies,
		APIKeys: m.apiKeys, APIKeyAuth: keyAuth,
		Introspection: &api.IntrospectionClients{Clients: introspectClients, Limiter: limiter},
		// Beside the read models: the event store's own database (or, with EventStoreDB, the
		// read models' SQL database), so every replica and every restart finds the answers.
		Idempotency: &api.Idempotency{Store: idempotency.NewSQLStore(m.db), Secret: secretKey, Retention: a.IdempotencyRetention},
	}, nil
}

// orNever turns a configured 0 ("never") into the commands' negative "off" (their 0 is "default").
func orNever(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

// userByUID is the users read model's lookup; *projections.UsersView is one.
type userByUID interface {
	ByUID(ctx context.Context, uid string) (projections.User, error)
}

// usersView serves the API's user lookups from the users read model.
type usersView struct{ v userByUID }

func (u usersView) ByUID(ctx context.Context, uid string) (api.UserView, error) {
	x, err := u.v.ByUID(ctx, uid)
	if errors.Is(err, projections.ErrNotFound) {
		return api.UserView{}, api.ErrUserNotFound
	}
	if err != nil {
		return api.UserView{}, err
	}
	return api.UserView{
		UID: x.UID, Email: x.Email, Username: x.Username, Role: x.Role, State: x.State, Level: x.Level,
		OTP: x.OTP, EmailVerified: x.EmailVerified, Data: x.Data, CreatedAt: x.CreatedAt, UpdatedAt: x.UpdatedAt,
	}, nil
}

// buildVersion is stamped at build time: go build -ldflags "-X main.buildVersion=v1.2.3"
// (the Dockerfile passes its VERSION build argument).
var buildVersion string

// version is the stamped version, else the module version of the binary, or its VCS revision,
// or "dev".
func version() string {
	if buildVersion != "" {
		return buildVersion
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			return s.Value[:12]
		}
	}
	return "dev"
}
