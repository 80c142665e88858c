package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/idlog/idlog/auth"
	cmds "github.com/idlog/idlog/commands"
	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/eventstore"
)

var usersCommand = command{name: "users", summary: "manage users: users create --email E --password-stdin --role admin; users import --file F; users erase UID", run: users}

// users dispatches to its subcommands: create, import and erase.
func users(ctx context.Context, env *environment, args []string) error {
	if len(args) > 0 && args[0] == "import" {
		return importUsers(ctx, env, args[1:])
	}
	if len(args) > 0 && args[0] == "erase" {
		return eraseUser(ctx, env, args[1:])
	}
	if len(args) == 0 || args[0] != "create" {
		fmt.Fprint(env.stderr, "Usage: idlog users create --email E --password-stdin [--username U] [--role R] [flags]\n"+
			"       idlog users import [--format idlog|barong|wekan] --file FILE (or < FILE)\n"+
			"       idlog users erase UID [flags]\n")
		if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
			return flag.ErrHelp
		}
		return errUsage
	}
	return createUser(ctx, env, args[1:])
}

// createUser registers a user with a role, its email trusted: how the first administrator comes
// to be. The password is read from standard input, never from the command line, where ps and the
// shell's history would show it.
func createUser(ctx context.Context, env *environment, args []string) error {
	fs := flag.NewFlagSet("users create", flag.ContinueOnError)
	email := fs.String("email", "", "the user's email `address` (required); it is marked verified")
	username := fs.String("username", "", "the user's `username` (optional)")
	roleName := fs.String("role", domain.RoleMember.String(), "the user's `role`: "+roleNames())
	passwordStdin := fs.Bool("password-stdin", false, "read the password from the first line of standard input (required)")
	cfg, err := loadConfig(fs, args, env)
	if err != nil {
		return err
	}
	switch {
	case *email == "":
		fmt.Fprintln(env.stderr, "idlog users create: --email is required")
		fs.Usage()
		return errUsage
	case !*passwordStdin:
		fmt.Fprintln(env.stderr, "idlog users create: --password-stdin is required: a password on the command line would show in ps and the shell history")
		fs.Usage()
		return errUsage
	}
	role, err := domain.ParseRole(*roleName)
	if err != nil {
		return fmt.Errorf("--role %q: want one of %s", *roleName, roleNames())
	}
	password, err := readPassword(env.stdin)
	if err != nil {
		return err
	}

	log := newLogger(env.stderr, cfg)
	store, closeStore, err := openSealedStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer closeStore()
	keys, ok := store.(eventstore.KeyOwners)
	if !ok {
		return fmt.Errorf("the %s event store cannot find users by email (no KeyOwners)", cfg.EventStore())
	}
	hasher, err := auth.NewPasswordHasher(cfg.Accounts.Argon2)
	if err != nil {
		return err
	}
	var levels domain.Levels // the zero ladder is the default one
	if cfg.Accounts.Levels != "" {
		if levels, err = domain.ParseLevels(cfg.Accounts.Levels); err != nil {
			return err
		}
	}
	streams, err := cmds.NewUserStreams(store, keys, domain.NewEventRegistry(), cmds.StreamsConfig{Levels: levels})
	if err != nil {
		return err
	}
	// TrustEmail: no code is sent, so the notifier only logs.
	register := cmds.NewRegisterUserHandler(streams, hasher, cmds.LogNotifier{Logger: log}, cmds.CodesConfig{},
		cmds.WalletConfig{SignupBonus: cfg.Accounts.SignupBonus})
	res, err := register.Handle(ctx, cmds.RegisterUser{
		Meta:  cmds.Meta{ActorUID: eventstore.ActorSystem, RequestID: "cli-users-create"},
		Email: *email, Username: *username, Password: password, Role: role, TrustEmail: true,
	})
	if err != nil {
		return cfg.RedactError(err)
	}
	log.Info("user created", "uid", res.Account.UID, "email", res.Account.Email, "role", res.Account.Role)
	fmt.Fprintln(env.stdout, res.Account.UID)
	return nil
}

// readPassword reads the first line of r, without its line ending.
func readPassword(r io.Reader) (string, error) {
	if r == nil {
		return "", errors.New("no standard input to read the password from")
	}
	line, err := bufio.NewReader(io.LimitReader(r, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read the password from standard input: %w", err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("standard input holds no password")
	}
	return line, nil
}

func roleNames() string {
	var names []string
	for _, r := range domain.Roles() {
		names = append(names, r.String())
	}
	return strings.Join(names, ", ")
}
