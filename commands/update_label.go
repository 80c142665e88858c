package commands

import (
	"context"
	"errors"

	"github.com/idlog/idlog/domain"
)

// UpdateLabel sets the value (and, when not empty, the description) of the user's label (Key,
// Scope). By is who asks, as in AddLabel; Scope empty means public. With CreateMissing, a label
// the user does not hold is added instead (Barong's admin "update" with replace).
type UpdateLabel struct {
	Meta
	UID           domain.UserID
	By            domain.ActorKind
	Key           string
	Value         string
	Scope         string
	Description   string
	CreateMissing bool
}

// UpdateLabelHandler handles UpdateLabel.
type UpdateLabelHandler struct{ users *UserStreams }

// NewUpdateLabelHandler returns the handler.
func NewUpdateLabelHandler(users *UserStreams) UpdateLabelHandler {
	if users == nil {
		panic("commands: NewUpdateLabelHandler needs users")
	}
	return UpdateLabelHandler{users: users}
}

// Handle updates the label, and changes the user's level if the label does. Setting the value it
// has already appends nothing and is not an error. A label the user does not hold is
// domain.ErrLabelNotFound (unless CreateMissing); a user touching a private label, or a key they
// hold privately, domain.ErrLabelPrivate.
func (h UpdateLabelHandler) Handle(ctx context.Context, cmd UpdateLabel) (Result, error) {
	scope, err := labelScope(cmd.Scope)
	if err != nil {
		return Result{}, err
	}
	l := domain.Label{Key: cmd.Key, Value: cmd.Value, Scope: scope, Description: cmd.Description}
	o, err := h.users.update(ctx, cmd.UID, "UpdateLabel", cmd.Meta, func(u *domain.User) (change, error) {
		events, err := u.UpdateLabel(cmd.By, l)
		switch {
		case errors.Is(err, domain.ErrUnchanged):
			return change{}, nil // a PATCH that sets what is there already succeeds
		case errors.Is(err, domain.ErrLabelNotFound) && cmd.CreateMissing:
			events, err = u.AddLabel(cmd.By, l)
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
