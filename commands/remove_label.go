package commands

import (
	"context"

	"github.com/idlog/idlog/domain"
)

// RemoveLabel takes the label (Key, Scope) from a user. By is who asks, as in AddLabel; Scope
// empty means public.
type RemoveLabel struct {
	Meta
	UID   domain.UserID
	By    domain.ActorKind
	Key   string
	Scope string
}

// RemoveLabelHandler handles RemoveLabel.
type RemoveLabelHandler struct{ users *UserStreams }

// NewRemoveLabelHandler returns the handler.
func NewRemoveLabelHandler(users *UserStreams) RemoveLabelHandler {
	if users == nil {
		panic("commands: NewRemoveLabelHandler needs users")
	}
	return RemoveLabelHandler{users: users}
}

// Handle removes the label, and lowers the user's level if the label granted it. A label the user
// does not hold is domain.ErrLabelNotFound; a user removing a private label, or a key they hold
// privately, domain.ErrLabelPrivate.
func (h RemoveLabelHandler) Handle(ctx context.Context, cmd RemoveLabel) (Result, error) {
	scope, err := labelScope(cmd.Scope)
	if err != nil {
		return Result{}, err
	}
	o, err := h.users.update(ctx, cmd.UID, "RemoveLabel", cmd.Meta, func(u *domain.User) (change, error) {
		events, err := u.RemoveLabel(cmd.By, cmd.Key, scope)
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
