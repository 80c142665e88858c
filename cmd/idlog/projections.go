package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/idlog/idlog/auth"
	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/eventstore/postgres"
	"github.com/idlog/idlog/eventstore/sqlite"
	"github.com/idlog/idlog/follower"
	"github.com/idlog/idlog/internal/config"
	"github.com/idlog/idlog/migrations"
	"github.com/idlog/idlog/projections"
)

var projectionsCommand = command{name: "projections", summary: "show the read models' status (status) or rebuild them (rebuild NAME|all)", run: projectionsMain}

const projectionsUsage = `Usage:
  idlog projections status [-json] [flags]    each projector's checkpoint, lag and state
  idlog projections rebuild NAME|all [flags]  rebuild read models from position 0 beside the live
                                              ones and swap them in; the server keeps serving
                                              (-batch N: events per transaction, default 10000)

Run idlog projections status -h for the configuration flags.
`

func projectionsMain(ctx context.Context, env *environment, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(env.stderr, projectionsUsage)
		return errUsage
	}
	switch args[0] {
	case "status":
		return projectionsStatus(ctx, env, args[1:])
	case "rebuild":
		return projectionsRebuild(ctx, env, args[1:])
	case "-h", "-help", "--help", "help":
		fmt.Fprint(env.stderr, projectionsUsage)
		return nil
	}
	fmt.Fprintf(env.stderr, "idlog projections: unknown subcommand %q\n\n%s", args[0], projectionsUsage)
	return errUsage
}

// readModels is the read models' database, their views and the runtime that keeps them.
type readModels struct {
	db       *sqlx.DB
	dialect  migrations.Dialect
	ownDB    bool // opened here, closed here; else it is the store's pool
	users    *projections.UsersView
	activity *projections.ActivityView
	labels   *projections.LabelsView
	wallet   *projections.WalletView
	sessions *projections.SessionsView
	// userProfiles is the profiles read model (Barong's Profile). It is always read on the primary:
	// the read replica does not route it yet.
	userProfiles *projections.UserProfilesView
	// kyc is the phones, documents and data storage read model, read on the primary too.
	kyc *projections.KYCView
	// passwordClasses lists the cost classes of imported hashes; costClasses feeds them to
	// serve's password hasher.
	passwordClasses *projections.PasswordClassesView
	costClasses     *costClassesKeeper
	stopSweeper     func()                   // the documents' files sweeper (startBlobSweeper), if any
	profiles        *projections.ProfileView // the three above in one query, for GET /users/me
	apiKeys         *projections.APIKeysView // read on the primary, as userProfiles
	runtime         *projections.Runtime
	// reads are the views the API queries: these above, or routed through the read replica
	// (useReadReplica), which replicaDB then holds.
	reads     readViews
	replicaDB *sqlx.DB
}

// openReadModels opens the read models beside the event store: in its Postgres database, or in
// its SQLite file. With EventStoreDB they go to IDLOG_DATABASE_URL if set, else to the SQLite file
// in the data directory. metrics may be nil.
// rebuildBatch is the runtime's Options.RebuildBatchSize; 0 means the default.
func openReadModels(ctx context.Context, cfg config.Config, store eventstore.Store, leases follower.Lease, log *slog.Logger, metrics prometheus.Registerer, rebuildBatch int) (*readModels, error) {
	m := &readModels{}
	var dialect migrations.Dialect
	logInDB := true
	switch s := rawStore(store).(type) {
	case *postgres.Store:
		m.db, dialect = s.DB(), migrations.Postgres
	case *sqlite.Store:
		db, err := projections.OpenSQLite(ctx, cfg.SQLitePath())
		if err != nil {
			return nil, err
		}
		m.db, m.ownDB, dialect = db, true, migrations.SQLite
	default:
		logInDB = false // the log is elsewhere: lag is shown in time only
		var err error
		if cfg.DatabaseURL != "" {
			dialect = migrations.Postgres
			if m.db, err = sqlx.Open("postgres", cfg.DatabaseURL); err == nil {
				err = m.db.PingContext(ctx)
			}
		} else {
			dialect = migrations.SQLite
			m.db, err = projections.OpenSQLite(ctx, cfg.SQLitePath())
		}
		if err == nil {
			m.ownDB = true
			err = migrations.Up(ctx, m.db.DB, dialect)
		}
		if err != nil {
			m.close()
			return nil, fmt.Errorf("read models database: %w", err)
		}
	}
	m.dialect = dialect
	m.users = projections.NewUsersView(m.db, dialect)
	m.activity = projections.NewActivityView(m.db, dialect)
	m.labels = projections.NewLabelsView(m.db, dialect)
	m.wallet = projections.NewWalletView(m.db, dialect)
	m.sessions = projections.NewSessionsView(m.db, dialect)
	m.profiles = projections.NewProfileView(m.db, dialect)
	if logInDB { // the events are in this database: /users/me checks the session in its query
		m.profiles = m.profiles.WithStreamVersions()
	}
	m.userProfiles = projections.NewUserProfilesView(m.db, dialect)
	m.kyc = projections.NewKYCView(m.db, dialect)
	m.apiKeys = projections.NewAPIKeysView(m.db, dialect)
	m.passwordClasses = projections.NewPasswordClassesView(m.db, dialect, auth.CostClass)
	rt, err := projections.New(projections.Options{
		DB: m.db, Dialect: dialect, Store: store, Logger: log, Metrics: metrics, LogInDB: logInDB, Lease: leases,
		SharedProgress: sharedProgress(store, leases), RebuildBatchSize: rebuildBatch,
	}, m.users, m.activity, m.labels, m.wallet, m.sessions, m.userProfiles, m.kyc, m.apiKeys, m.passwordClasses)
	if err != nil {
		m.close()
		return nil, err
	}
	m.runtime = rt
	m.reads = m.primaryViews()
	return m, nil
}

// close stops the runtime, if it was started, and closes what openReadModels opened.
func (m *readModels) close() {
	m.costClasses.close()
	if m.stopSweeper != nil {
		m.stopSweeper()
	}
	if m.runtime != nil {
		m.runtime.Stop()
	}
	if m.replicaDB != nil {
		_ = m.replicaDB.Close()
	}
	if m.ownDB && m.db != nil {
		_ = m.db.Close()
	}
}

// withReadModels runs fn over the configured store and read models, for the one-shot commands.
// rebuildBatch, if not nil, is read once the flags are parsed (see openReadModels).
func withReadModels(ctx context.Context, fs *flag.FlagSet, args []string, env *environment, rebuildBatch *int, fn func(m *readModels, log *slog.Logger) error) error {
	cfg, err := loadConfig(fs, args, env)
	if err != nil {
		return err
	}
	batch := 0
	if rebuildBatch != nil {
		if batch = *rebuildBatch; batch < 1 {
			fmt.Fprintf(env.stderr, "idlog %s: -batch (%d) must be at least 1\n", fs.Name(), batch)
			return errUsage
		}
	}
	log := newLogger(env.stderr, cfg)
	// The read models are made of personal data opened (or erased), as serve's are.
	store, closeStore, err := openSealedStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer closeStore()
	m, err := openReadModels(ctx, cfg, store, nil, log, nil, batch)
	if err != nil {
		return cfg.RedactError(err)
	}
	defer m.close()
	return cfg.RedactError(fn(m, log))
}

func projectionsStatus(ctx context.Context, env *environment, args []string) error {
	fs := flag.NewFlagSet("projections status", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print the status as JSON")
	return withReadModels(ctx, fs, args, env, nil, func(m *readModels, _ *slog.Logger) error {
		st, err := m.runtime.Status(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			enc := json.NewEncoder(env.stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(st)
		}
		printStatus(env, st)
		return nil
	})
}

func printStatus(env *environment, st []projections.Status) {
	tw := tabwriter.NewWriter(env.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PROJECTOR\tGENERATION\tPOSITION\tLAG EVENTS\tLAG SECONDS\tSTATE\tOWNER\tREBUILD\tLAST ERROR")
	for _, s := range st {
		lag := fmt.Sprint(s.LagEvents)
		if s.LagEvents < 0 {
			lag = "?"
		}
		rebuild := "-"
		if s.Rebuild != nil {
			rebuild = fmt.Sprintf("generation %d at %d, %d behind", s.Rebuild.Generation, s.Rebuild.Position, s.Rebuild.LagEvents)
		}
		lastErr := "-"
		if s.LastError != "" {
			lastErr = strings.ReplaceAll(s.LastError, "\n", " ")
		}
		owner := "-" // the replica that runs it, when replicas share the database
		if s.Owner != "" {
			owner = s.Owner
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%.1f\t%s\t%s\t%s\t%s\n", s.Name, s.Generation, s.Position, lag, s.LagSeconds, s.State, owner, rebuild, lastErr)
	}
	tw.Flush()
}

func projectionsRebuild(ctx context.Context, env *environment, args []string) error {
	// The name may come before or after the flags.
	var name string
	switch {
	case len(args) > 0 && !strings.HasPrefix(args[0], "-"):
		name, args = args[0], args[1:]
	case len(args) > 0 && !strings.HasPrefix(args[len(args)-1], "-"):
		name, args = args[len(args)-1], args[:len(args)-1]
	}
	fs := flag.NewFlagSet("projections rebuild", flag.ContinueOnError)
	batch := fs.Int("batch", projections.DefaultRebuildBatchSize, "the most events one transaction of the rebuild applies: larger is faster; "+
		"smaller holds back, for less time, the appends (SQLite) or the log's readers (PostgreSQL) of a server running beside")
	if name == "" && !slices.ContainsFunc(args, func(a string) bool { return a == "-h" || a == "-help" || a == "--help" }) {
		fmt.Fprintf(env.stderr, "idlog projections rebuild: name a projector, or all\n\n%s", projectionsUsage)
		return errUsage
	}
	return withReadModels(ctx, fs, args, env, batch, func(m *readModels, log *slog.Logger) error {
		names := m.runtime.Projectors()
		if name != "all" {
			if !slices.Contains(names, name) {
				return fmt.Errorf("%w: %q (the projectors are %s, or all)", projections.ErrUnknownProjector, name, strings.Join(names, ", "))
			}
			names = []string{name}
		}
		started := time.Now()
		err := m.runtime.Rebuild(ctx, names...)
		fmt.Fprintf(env.stdout, "took %s\n", time.Since(started).Round(time.Millisecond))
		st, serr := m.runtime.Status(context.WithoutCancel(ctx))
		if serr == nil {
			for _, s := range st {
				if slices.Contains(names, s.Name) {
					fmt.Fprintf(env.stdout, "%s: generation %d is live at position %d\n", s.Name, s.Generation, s.Position)
				}
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("interrupted; the live read models are unchanged, run the rebuild again: %w", err)
			}
			return err
		}
		return serr
	})
}
