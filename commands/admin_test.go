package commands_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/idlog/idlog/commands"
	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/eventstore"
)

// staff registers a user with a role, as the operator's command line does, and returns the Meta
// of their requests.
func (e *env) staff(t *testing.T, email string, role domain.Role) commands.Meta {
	t.Helper()
	r, err := e.app.Commands.RegisterUser.Handle(t.Context(), commands.RegisterUser{
		Meta: commands.Meta{ActorUID: eventstore.ActorSystem}, Email: email, Password: strongPassword, Role: role,
	})
	if err != nil {
		t.Fatalf("register %s: %v", email, err)
	}
	return commands.Meta{ActorUID: r.Account.UID, ActorRole: role.String()}
}

func TestRoleTable(t *testing.T) {
	t.Parallel()
	for _, a := range commands.Abilities() {
		roles := commands.RolesWith(a)
		if !slices.Contains(roles, "superadmin") {
			t.Errorf("%s: a superadmin lacks it", a)
		}
		for _, never := range []string{"member", "", "root"} {
			if slices.Contains(roles, never) || commands.Permits(never, a) {
				t.Errorf("%s: %q has it", a, never)
			}
		}
		for _, r := range domain.Roles() {
			if commands.Permits(r.String(), a) != slices.Contains(roles, r.String()) {
				t.Errorf("%s: Permits(%s) disagrees with RolesWith %v", a, r, roles)
			}
		}
	}
	// Auditors read, and change nothing.
	for _, a := range []commands.Ability{commands.AbilityCreateUsers, commands.AbilityChangeUserState, commands.AbilityResetUserOTP,
		commands.AbilityChangeUserRole, commands.AbilityDeleteUsers, commands.AbilityWriteLabels, commands.AbilityCreditWallets} {
		if commands.Permits("auditor", a) {
			t.Errorf("an auditor may %s", a)
		}
	}
	if !commands.Permits("auditor", commands.AbilityReadUsers) {
		t.Error("an auditor may not read users")
	}
}

func TestAdminCommandsCheckTheRoleTable(t *testing.T) {
	t.Parallel()
	e := newEnv(t, commands.Config{})
	super := e.staff(t, "super@example.com", domain.RoleSuperAdmin)
	admin := e.staff(t, "admin@example.com", domain.RoleAdmin)
	other := e.staff(t, "admin2@example.com", domain.RoleAdmin)
	supp := e.staff(t, "support@example.com", domain.RoleSupport)
	aud := e.staff(t, "auditor@example.com", domain.RoleAuditor)
	bob := domain.UserID(e.register(t, "bob@example.com", "bob").Account.UID)
	e.enableOTP(t, string(bob))
	member := commands.Meta{ActorUID: string(bob), ActorRole: "member"}
	ctx := t.Context()
	c := e.app.Commands

	state := func(m commands.Meta, uid string, s domain.State) error {
		_, err := c.ChangeUserState.Handle(ctx, commands.ChangeUserState{Meta: m, UID: domain.UserID(uid), State: s})
		return err
	}
	role := func(m commands.Meta, uid string, r domain.Role) error {
		_, err := c.ChangeUserRole.Handle(ctx, commands.ChangeUserRole{Meta: m, UID: domain.UserID(uid), Role: r})
		return err
	}
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"a member bans", state(member, admin.ActorUID, domain.StateBanned), commands.ErrNotPermitted},
		{"an auditor locks", state(aud, string(bob), domain.StateLocked), commands.ErrNotPermitted},
		{"nobody acting", state(commands.Meta{}, string(bob), domain.StateLocked), commands.ErrNotPermitted},
		{"a role the table does not know", state(commands.Meta{ActorUID: admin.ActorUID, ActorRole: "root"}, string(bob), domain.StateLocked), commands.ErrNotPermitted},
		{"support changes a state", state(supp, string(bob), domain.StateBanned), commands.ErrNotPermitted},
		{"an admin bans themselves", state(admin, admin.ActorUID, domain.StateBanned), commands.ErrNotPermitted},
		{"an admin bans a superadmin", state(admin, super.ActorUID, domain.StateBanned), commands.ErrNotPermitted},
		{"an admin changes their own role", role(admin, admin.ActorUID, domain.RoleMember), commands.ErrNotPermitted},
		{"a superadmin changes their own role", role(super, super.ActorUID, domain.RoleAdmin), commands.ErrNotPermitted},
		{"an admin makes a superadmin", role(admin, string(bob), domain.RoleSuperAdmin), commands.ErrNotPermitted},
		{"an admin demotes a superadmin", role(admin, super.ActorUID, domain.RoleAdmin), commands.ErrNotPermitted},
		{"support changes a role", role(supp, string(bob), domain.RoleAdmin), commands.ErrNotPermitted},
		{"an admin demotes another admin", role(admin, other.ActorUID, domain.RoleSupport), nil},
		{"a superadmin makes a superadmin", role(super, other.ActorUID, domain.RoleSuperAdmin), nil},
		{"the operator's command line changes a role", role(commands.Meta{ActorUID: eventstore.ActorSystem}, string(bob), domain.RoleAuditor), nil},
		{"a role change to the same role", role(super, string(bob), domain.RoleAuditor), domain.ErrUnchanged},
		{"an unknown user", role(admin, "ID0000000000", domain.RoleAdmin), commands.ErrUserNotFound},
		{"a malformed user id", role(admin, "bob", domain.RoleAdmin), commands.ErrCommandInvalid},
	} {
		if !errorIs(tc.err, tc.want) {
			t.Errorf("%s: error %v, want %v", tc.name, tc.err, tc.want)
		}
	}

	// Support resets a user's 2FA, and may not touch a superadmin's.
	_, err := c.ResetUserOTP.Handle(ctx, commands.ResetUserOTP{Meta: aud, UID: bob})
	wantErr(t, "an auditor resets 2FA", err, commands.ErrNotPermitted)
	res, err := c.ResetUserOTP.Handle(ctx, commands.ResetUserOTP{Meta: supp, UID: bob})
	if err != nil || res.Account.OTP {
		t.Fatalf("support resets 2FA: %+v, %v", res.Account, err)
	}
	_, err = c.ResetUserOTP.Handle(ctx, commands.ResetUserOTP{Meta: supp, UID: bob})
	wantErr(t, "reset 2FA twice", err, domain.ErrOTPNotEnabled)
	e.signIn(t, "bob@example.com", "") // no code needed any more

	_, err = c.CreateUser.Handle(ctx, commands.CreateUser{Meta: aud, Email: "x@example.com", Password: strongPassword})
	wantErr(t, "an auditor creates a user", err, commands.ErrNotPermitted)
	_, err = c.CreateUser.Handle(ctx, commands.CreateUser{Meta: admin, Email: "x@example.com", Password: strongPassword, Role: domain.RoleSuperAdmin})
	wantErr(t, "an admin creates a superadmin", err, commands.ErrNotPermitted)
	_, err = c.CloseAccount.Handle(ctx, commands.CloseAccount{Meta: supp, UID: bob})
	wantErr(t, "support deletes a user", err, commands.ErrNotPermitted)
	_, err = c.SetUserLogin.Handle(ctx, commands.SetUserLogin{Meta: member, UID: bob})
	wantErr(t, "a member turns sign-in off", err, commands.ErrNotPermitted)
}

func errorIs(err, want error) bool {
	if want == nil {
		return err == nil
	}
	return err != nil && errors.Is(err, want)
}

func TestCreateUserRecordsTheAdministrator(t *testing.T) {
	t.Parallel()
	e := newEnv(t, commands.Config{})
	admin := e.staff(t, "admin@example.com", domain.RoleAdmin)
	admin.IP = "192.0.2.7"
	res, err := e.app.Commands.CreateUser.Handle(t.Context(), commands.CreateUser{
		Meta: admin, Email: "Carol@Example.com", Password: strongPassword, Username: "carol", Role: domain.RoleAccountant,
	})
	if err != nil {
		t.Fatal(err)
	}
	if a := res.Account; a.Email != "carol@example.com" || a.Username != "carol" || a.Role != "accountant" || a.State != "active" {
		t.Fatalf("account %+v", a)
	}
	evs := e.events(t, res.Account.UID)
	if evs[0].Type != "UserRegistered" || evs[0].Metadata.ActorUID != admin.ActorUID || evs[0].Metadata.ActorRole != "admin" || evs[0].Metadata.IP != "192.0.2.7" {
		t.Errorf("first event %s by %+v, want UserRegistered by the admin", evs[0].Type, evs[0].Metadata)
	}
	e.mail.last(t, commands.NotifyEmailConfirmation, "carol@example.com") // confirmed as on sign-up
	e.signIn(t, "carol", "")
	_, err = e.app.Commands.CreateUser.Handle(t.Context(), commands.CreateUser{Meta: admin, Email: "carol@example.com", Password: strongPassword})
	wantErr(t, "the same email again", err, commands.ErrEmailTaken)
}

func TestBanEndsTheSessionsAtOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, commands.Config{})
	admin := e.staff(t, "admin@example.com", domain.RoleCompliance)
	uid := e.register(t, "bob@example.com", "").Account.UID
	s1, s2 := e.signIn(t, "bob@example.com", ""), e.signIn(t, "bob@example.com", "")
	res, err := e.app.Commands.ChangeUserState.Handle(t.Context(), commands.ChangeUserState{Meta: admin, UID: domain.UserID(uid), State: domain.StateBanned, Reason: "fraud"})
	if err != nil || res.Account.State != "banned" {
		t.Fatalf("ban: %+v, %v", res.Account, err)
	}
	for _, sid := range []string{s1.SessionID, s2.SessionID} {
		if ok, err := e.isOpen(t, uid, sid); ok || err != nil {
			t.Errorf("session %s open after the ban (%v)", sid, err)
		}
	}
	_, err = e.app.Commands.SignIn.Handle(t.Context(), commands.SignIn{Login: "bob@example.com", Password: strongPassword})
	wantErr(t, "sign-in when banned", err, domain.ErrUserNotActive)
	if _, err := e.app.Commands.ChangeUserState.Handle(t.Context(), commands.ChangeUserState{Meta: admin, UID: domain.UserID(uid), State: domain.StateActive}); err != nil {
		t.Fatal(err)
	}
	e.signIn(t, "bob@example.com", "")
}

func TestSetUserLoginKeepsTheState(t *testing.T) {
	t.Parallel()
	e := newEnv(t, commands.Config{})
	admin := e.staff(t, "admin@example.com", domain.RoleAdmin)
	uid := domain.UserID(e.register(t, "bob@example.com", "").Account.UID)
	s := e.signIn(t, "bob@example.com", "")
	off := commands.SetUserLogin{Meta: admin, UID: uid, Enabled: false}
	res, err := e.app.Commands.SetUserLogin.Handle(t.Context(), off)
	if err != nil || res.Account.State != "active" {
		t.Fatalf("disable login: %+v, %v", res.Account, err)
	}
	if ok, _ := e.isOpen(t, string(uid), s.SessionID); ok {
		t.Error("session open after sign-in was turned off")
	}
	if got := types(e.events(t, string(uid))); !slices.Equal(got[len(got)-2:], []string{"LoginDisabled", "SessionEnded"}) {
		t.Errorf("events end with %v", got[len(got)-2:])
	}
	_, err = e.app.Commands.SignIn.Handle(t.Context(), commands.SignIn{Login: "bob@example.com", Password: strongPassword})
	wantErr(t, "sign-in while off", err, domain.ErrLoginDisabled)
	if last := e.events(t, string(uid)); last[len(last)-1].Type != "LoginFailed" || !strings.Contains(string(last[len(last)-1].Data), `"login_disabled"`) {
		t.Errorf("last event %s %s, want LoginFailed for login_disabled", last[len(last)-1].Type, last[len(last)-1].Data)
	}
	_, err = e.app.Commands.SetUserLogin.Handle(t.Context(), off)
	wantErr(t, "off twice", err, domain.ErrUnchanged)
	if _, err := e.app.Commands.SetUserLogin.Handle(t.Context(), commands.SetUserLogin{Meta: admin, UID: uid, Enabled: true}); err != nil {
		t.Fatal(err)
	}
	e.signIn(t, "bob@example.com", "")
}

func TestCloseAccountReleasesEmailAndUsername(t *testing.T) {
	t.Parallel()
	e := newEnv(t, commands.Config{})
	admin := e.staff(t, "admin@example.com", domain.RoleAdmin)
	old := e.register(t, "bob@example.com", "bob").Account.UID
	s := e.signIn(t, "bob", "")
	cl := commands.CloseAccount{Meta: admin, UID: domain.UserID(old)}
	cl.IdempotencyKey = "close-bob"
	res, err := e.app.Commands.CloseAccount.Handle(t.Context(), cl)
	if err != nil || res.Account.State != "deleted" {
		t.Fatalf("close: %+v, %v", res.Account, err)
	}
	if ok, _ := e.isOpen(t, old, s.SessionID); ok {
		t.Error("session open after the account was closed")
	}
	n := len(e.events(t, old))
	if again, err := e.app.Commands.CloseAccount.Handle(t.Context(), cl); err != nil || !again.Replayed || len(e.events(t, old)) != n {
		t.Errorf("retry with the key: %+v, %v; %d events, want %d", again, err, len(e.events(t, old)), n)
	}
	cl.IdempotencyKey = ""
	_, err = e.app.Commands.CloseAccount.Handle(t.Context(), cl)
	wantErr(t, "close twice", err, domain.ErrAccountClosed)
	_, err = e.app.Commands.ChangeUserState.Handle(t.Context(), commands.ChangeUserState{Meta: admin, UID: domain.UserID(old), State: domain.StateActive})
	wantErr(t, "restore a closed account", err, domain.ErrAccountClosed)

	// The address and the name are free: a new user with a new id takes them, and signs in as
	// themselves.
	fresh := e.register(t, "bob@example.com", "bob").Account
	if fresh.UID == old || fresh.Role != "member" || fresh.OTP || len(fresh.Labels) != 0 {
		t.Fatalf("new account %+v shares something with %s", fresh, old)
	}
	in := e.signIn(t, "bob@example.com", "")
	if in.Account.UID != fresh.UID {
		t.Errorf("sign-in by email reached %s, want the new %s", in.Account.UID, fresh.UID)
	}
	if in := e.signIn(t, "bob", ""); in.Account.UID != fresh.UID {
		t.Errorf("sign-in by username reached %s, want the new %s", in.Account.UID, fresh.UID)
	}
}
