package commands

import (
	"context"

	"github.com/idlog/idlog/domain"
)

// ChangeUserState is an administrator moving a user to another state: active, banned, locked or
// deleted (a soft delete, which an administrator can undo; CloseAccount deletes for good). Leaving
// active ends every session of the user: their access tokens are refused from the next request.
type ChangeUserState struct {
	Meta
	UID    domain.UserID
	State  domain.State
	Reason string // free text for the audit, at most 500 bytes
}

// ChangeUserStateHandler handles ChangeUserState.
type ChangeUserStateHandler struct{ users *UserStreams }

// NewChangeUserStateHandler returns the handler.
func NewChangeUserStateHandler(users *UserStreams) ChangeUserStateHandler {
	if users == nil {
		panic("commands: NewChangeUserStateHandler needs users")
	}
	return ChangeUserStateHandler{users: users}
}

// Handle changes the state. Errors: ErrNotPermitted (see authorizeOn), ErrUserNotFound,
// domain.ErrUnchanged, domain.ErrStateInvalid, domain.ErrAccountClosed.
func (h ChangeUserStateHandler) Handle(ctx context.Context, cmd ChangeUserState) (Result, error) {
	if err := authorize(cmd.Meta, AbilityChangeUserState); err != nil {
		return Result{}, err
	}
	o, err := h.users.update(ctx, cmd.UID, "ChangeUserState", cmd.Meta, func(u *domain.User) (change, error) {
		if err := authorizeOn(cmd.Meta, AbilityChangeUserState, u); err != nil {
			return change{}, err
		}
		events, err := u.ChangeState(cmd.State, cmd.Reason, h.users.now())
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
