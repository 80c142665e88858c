package commands

import (
	"context"

	"github.com/idlog/idlog/domain"
)

// ChangeUserRole is an administrator giving a user another role. Nobody changes their own role,
// and only a superadmin makes a superadmin or changes one's role.
type ChangeUserRole struct {
	Meta
	UID  domain.UserID
	Role domain.Role
}

// ChangeUserRoleHandler handles ChangeUserRole.
type ChangeUserRoleHandler struct{ users *UserStreams }

// NewChangeUserRoleHandler returns the handler.
func NewChangeUserRoleHandler(users *UserStreams) ChangeUserRoleHandler {
	if users == nil {
		panic("commands: NewChangeUserRoleHandler needs users")
	}
	return ChangeUserRoleHandler{users: users}
}

// Handle changes the role. Errors: ErrNotPermitted, ErrUserNotFound, domain.ErrUnchanged,
// domain.ErrRoleInvalid, domain.ErrAccountClosed.
func (h ChangeUserRoleHandler) Handle(ctx context.Context, cmd ChangeUserRole) (Result, error) {
	if err := authorize(cmd.Meta, AbilityChangeUserRole); err != nil {
		return Result{}, err
	}
	if err := authorizeGrant(cmd.Meta, cmd.Role); err != nil {
		return Result{}, err
	}
	o, err := h.users.update(ctx, cmd.UID, "ChangeUserRole", cmd.Meta, func(u *domain.User) (change, error) {
		if err := authorizeOn(cmd.Meta, AbilityChangeUserRole, u); err != nil {
			return change{}, err
		}
		events, err := u.ChangeRole(cmd.Role)
		return change{events: events}, err
	})
	if err == nil {
		err = replayedOn(o, cmd.UID)
	}
	if err != nil {
		return Result{}, err
	}
	return resultOf(o), nil
}
