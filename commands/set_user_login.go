package commands

import (
	"context"

	"github.com/idlog/idlog/domain"
)

// SetUserLogin is an administrator turning a user's sign-in off or on (Wekan's disableLogin and
// enableLogin) without touching their state or anything else: LoginDisabled and LoginEnabled, a
// flag beside the state. Turning it off ends every session of the user at once.
type SetUserLogin struct {
	Meta
	UID     domain.UserID
	Enabled bool
}

// SetUserLoginHandler handles SetUserLogin.
type SetUserLoginHandler struct{ users *UserStreams }

// NewSetUserLoginHandler returns the handler.
func NewSetUserLoginHandler(users *UserStreams) SetUserLoginHandler {
	if users == nil {
		panic("commands: NewSetUserLoginHandler needs users")
	}
	return SetUserLoginHandler{users: users}
}

// Handle turns sign-in off or on. It needs AbilityChangeUserState. Errors: ErrNotPermitted,
// ErrUserNotFound, domain.ErrUnchanged, domain.ErrAccountClosed.
func (h SetUserLoginHandler) Handle(ctx context.Context, cmd SetUserLogin) (Result, error) {
	if err := authorize(cmd.Meta, AbilityChangeUserState); err != nil {
		return Result{}, err
	}
	o, err := h.users.update(ctx, cmd.UID, "SetUserLogin", cmd.Meta, func(u *domain.User) (change, error) {
		if err := authorizeOn(cmd.Meta, AbilityChangeUserState, u); err != nil {
			return change{}, err
		}
		var events []domain.Event
		var err error
		if cmd.Enabled {
			events, err = u.EnableLogin()
		} else {
			events, err = u.DisableLogin(h.users.now())
		}
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
