package commands

import (
	"context"

	"github.com/idlog/idlog/domain"
)

// SignOut ends a session: access tokens bound to it are refused from then on.
type SignOut struct {
	Meta
	UID       domain.UserID
	SessionID string
}

// SignOutHandler handles SignOut.
type SignOutHandler struct{ users *UserStreams }

// NewSignOutHandler returns the handler.
func NewSignOutHandler(users *UserStreams) SignOutHandler {
	if users == nil {
		panic("commands: NewSignOutHandler needs users")
	}
	return SignOutHandler{users: users}
}

// Handle ends the session; an unknown or closed one is domain.ErrSessionNotFound.
func (h SignOutHandler) Handle(ctx context.Context, cmd SignOut) (Result, error) {
	o, err := h.users.update(ctx, cmd.UID, "SignOut", cmd.Meta, func(u *domain.User) (change, error) {
		events, err := u.EndSession(cmd.SessionID)
		return change{events: events}, err
	})
	if err != nil {
		return Result{}, err
	}
	return resultOf(o), nil
}
