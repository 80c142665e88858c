package commands

import (
	"context"

	"github.com/idlog/idlog/domain"
)

// CreateUser is an administrator creating a user (Barong's and Wekan's admin create): a sign-up
// recorded with the administrator as its actor, with a role of their choosing. Email, Password and
// Username follow RegisterUser's rules; a confirmation token goes to the address as on sign-up.
type CreateUser struct {
	Meta
	Email    string
	Password string
	Username string
	// Role is the new user's; the zero Role means member. Only a superadmin makes superadmins.
	Role domain.Role
}

// CreateUserHandler handles CreateUser.
type CreateUserHandler struct{ register RegisterUserHandler }

// NewCreateUserHandler returns the handler; register makes the user.
func NewCreateUserHandler(register RegisterUserHandler) CreateUserHandler {
	if register.users == nil {
		panic("commands: NewCreateUserHandler needs a built RegisterUserHandler")
	}
	return CreateUserHandler{register: register}
}

// Handle creates the user. ErrNotPermitted unless the actor has AbilityCreateUsers (and is a
// superadmin to make one); otherwise RegisterUser's errors.
func (h CreateUserHandler) Handle(ctx context.Context, cmd CreateUser) (Result, error) {
	if err := authorize(cmd.Meta, AbilityCreateUsers); err != nil {
		return Result{}, err
	}
	if err := authorizeGrant(cmd.Meta, cmd.Role); err != nil {
		return Result{}, err
	}
	return h.register.Handle(ctx, RegisterUser{
		Meta: cmd.Meta, Email: cmd.Email, Password: cmd.Password, Username: cmd.Username, Role: cmd.Role,
	})
}
