package commands

import (
	"errors"
	"fmt"
	"slices"

	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/eventstore"
)

// ErrNotPermitted: the actor's role lacks the ability the command or route needs, or the rules of
// who may act on whom refuse it (see Permits and the admin commands). The API answers 403.
var ErrNotPermitted = errors.New("commands: not permitted")

// Ability is one thing the administrators' API lets a role do. The abilities are the variables
// below; the table in abilities is the one place that says which roles have each.
type Ability struct{ name string }

func (a Ability) String() string { return a.name }

// The abilities. Users (members) have none: their own account is theirs through the signed-in
// routes, not through these.
var (
	// AbilityReadUsers: list users and see everything about one (GET /admin/users...).
	AbilityReadUsers = Ability{"read_users"}
	// AbilityReadMetrics: the sign-up and sign-in report (GET /admin/metrics).
	AbilityReadMetrics = Ability{"read_metrics"}
	// AbilityCreateUsers: create a user, with a role (POST /admin/users).
	AbilityCreateUsers = Ability{"create_users"}
	// AbilityChangeUserState: ban, lock, soft-delete or reactivate a user, and turn their sign-in
	// off and on (PUT /admin/users state, PUT /admin/users/{uid}/login).
	AbilityChangeUserState = Ability{"change_user_state"}
	// AbilityResetUserOTP: turn a user's two-factor authentication off without a code, the support
	// case of a lost phone (PUT /admin/users otp=false).
	AbilityResetUserOTP = Ability{"reset_user_otp"}
	// AbilityChangeUserRole: give a user another role (POST /admin/users/role).
	AbilityChangeUserRole = Ability{"change_user_role"}
	// AbilityDeleteUsers: close an account for good (DELETE /admin/users/{uid}).
	AbilityDeleteUsers = Ability{"delete_users"}
	// AbilityReadActivity: everyone's activity log (GET /admin/activities...).
	AbilityReadActivity = Ability{"read_activity"}
	// AbilityReadEvents: the event log itself and users as they were (GET /admin/events...,
	// /admin/users/{uid}/events, /admin/users/{uid}?as_of=, /admin/audit/verify).
	AbilityReadEvents = Ability{"read_events"}
	// AbilityReadProjections: the read models' status (GET /admin/projections).
	AbilityReadProjections = Ability{"read_projections"}
	// AbilityReadLabels and AbilityWriteLabels: every user's labels (/admin/users/labels...).
	AbilityReadLabels  = Ability{"read_labels"}
	AbilityWriteLabels = Ability{"write_labels"}
	// AbilityCreditWallets: credit a user's coins (deposits from a payment provider).
	AbilityCreditWallets = Ability{"credit_wallets"}
	// AbilityErasePersonalData: erase a user's personal data for good (DELETE
	// /admin/users/{uid}/personal-data): a data protection request that compliance handles.
	AbilityErasePersonalData = Ability{"erase_personal_data"}
	// AbilityReadAccessPolicy and AbilityWriteAccessPolicy: the gateway's permissions and
	// restrictions, and whitelinks (/admin/permissions, /admin/restrictions).
	AbilityReadAccessPolicy  = Ability{"read_access_policy"}
	AbilityWriteAccessPolicy = Ability{"write_access_policy"}
)

// abilities is the role table: which roles have which ability. Auditors read and never change
// anything; support helps users (their 2FA) and reads; compliance judges accounts (state, labels);
// accountants handle coins; admins do everything but touch superadmins; superadmins everything.
var abilities = map[Ability][]domain.Role{
	AbilityReadUsers:         {domain.RoleSuperAdmin, domain.RoleAdmin, domain.RoleAccountant, domain.RoleCompliance, domain.RoleSupport, domain.RoleAuditor},
	AbilityReadMetrics:       {domain.RoleSuperAdmin, domain.RoleAdmin, domain.RoleAccountant, domain.RoleCompliance, domain.RoleAuditor},
	AbilityCreateUsers:       {domain.RoleSuperAdmin, domain.RoleAdmin},
	AbilityChangeUserState:   {domain.RoleSuperAdmin, domain.RoleAdmin, domain.RoleCompliance},
	AbilityResetUserOTP:      {domain.RoleSuperAdmin, domain.RoleAdmin, domain.RoleSupport},
	AbilityChangeUserRole:    {domain.RoleSuperAdmin, domain.RoleAdmin},
	AbilityDeleteUsers:       {domain.RoleSuperAdmin, domain.RoleAdmin},
	AbilityReadActivity:      {domain.RoleSuperAdmin, domain.RoleAdmin, domain.RoleCompliance, domain.RoleSupport, domain.RoleAuditor},
	AbilityReadEvents:        {domain.RoleSuperAdmin, domain.RoleAdmin, domain.RoleAuditor},
	AbilityReadProjections:   {domain.RoleSuperAdmin, domain.RoleAdmin},
	AbilityReadLabels:        {domain.RoleSuperAdmin, domain.RoleAdmin, domain.RoleCompliance, domain.RoleSupport, domain.RoleAuditor},
	AbilityWriteLabels:       {domain.RoleSuperAdmin, domain.RoleAdmin, domain.RoleCompliance},
	AbilityCreditWallets:     {domain.RoleSuperAdmin, domain.RoleAdmin, domain.RoleAccountant},
	AbilityErasePersonalData: {domain.RoleSuperAdmin, domain.RoleAdmin, domain.RoleCompliance},
	AbilityReadAccessPolicy:  {domain.RoleSuperAdmin, domain.RoleAdmin, domain.RoleAuditor},
	AbilityWriteAccessPolicy: {domain.RoleSuperAdmin, domain.RoleAdmin},
}

// Abilities lists every ability, in the order of the variables above.
func Abilities() []Ability {
	return []Ability{
		AbilityReadUsers, AbilityReadMetrics, AbilityCreateUsers, AbilityChangeUserState, AbilityResetUserOTP,
		AbilityChangeUserRole, AbilityDeleteUsers, AbilityReadActivity, AbilityReadEvents, AbilityReadProjections,
		AbilityReadLabels, AbilityWriteLabels, AbilityCreditWallets, AbilityErasePersonalData, AbilityReadAccessPolicy, AbilityWriteAccessPolicy,
	}
}

// Permits reports whether a role (by name, as in an access token or Meta.ActorRole) has the
// ability. An unknown role has none.
func Permits(role string, a Ability) bool {
	r, err := domain.ParseRole(role)
	return err == nil && slices.Contains(abilities[a], r)
}

// RolesWith lists the names of the roles that have the ability, most powerful first; for
// middleware that takes role names (api.RequireRole).
func RolesWith(a Ability) []string {
	var out []string
	for _, r := range domain.Roles() {
		if slices.Contains(abilities[a], r) {
			out = append(out, r.String())
		}
	}
	return out
}

// authorize checks that the actor has the ability. The system (the operator's command line) may do
// anything.
func authorize(m Meta, a Ability) error {
	if m.ActorUID == eventstore.ActorSystem || m.ActorUID != "" && Permits(m.ActorRole, a) {
		return nil
	}
	role := m.ActorRole
	if role == "" {
		role = "no role"
	}
	return fmt.Errorf("%w: %s lacks %s", ErrNotPermitted, role, a)
}

// authorizeOn checks the ability and the rules that depend on the user acted on: administrators
// act on other users (their own account is theirs through the signed-in routes, and an admin who
// banned or demoted themselves could lock the service out), and only a superadmin acts on a
// superadmin.
func authorizeOn(m Meta, a Ability, u *domain.User) error {
	if err := authorize(m, a); err != nil {
		return err
	}
	if m.ActorUID == eventstore.ActorSystem {
		return nil
	}
	if m.ActorUID == string(u.ID()) {
		return fmt.Errorf("%w: %s on one's own account", ErrNotPermitted, a)
	}
	if u.Role() == domain.RoleSuperAdmin && m.ActorRole != domain.RoleSuperAdmin.String() {
		return fmt.Errorf("%w: only a superadmin acts on a superadmin", ErrNotPermitted)
	}
	return nil
}

// authorizeGrant checks that the actor may give someone role: only a superadmin makes superadmins.
func authorizeGrant(m Meta, role domain.Role) error {
	if role == domain.RoleSuperAdmin && m.ActorUID != eventstore.ActorSystem && m.ActorRole != domain.RoleSuperAdmin.String() {
		return fmt.Errorf("%w: only a superadmin makes superadmins", ErrNotPermitted)
	}
	return nil
}
