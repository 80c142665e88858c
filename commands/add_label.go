package commands

import (
	"context"

	"github.com/idlog/idlog/domain"
)

// AddLabel gives a user a label. By is who asks: domain.ActorUser (the user on their own
// account, who may add public labels only) or domain.ActorAdmin. Scope is "public" or "private";
// empty means public.
type AddLabel struct {
	Meta
	UID         domain.UserID
	By          domain.ActorKind
	Key         string
	Value       string
	Scope       string
	Description string
}

// AddLabelHandler handles AddLabel.
type AddLabelHandler struct{ users *UserStreams }

// NewAddLabelHandler returns the handler.
func NewAddLabelHandler(users *UserStreams) AddLabelHandler {
	if users == nil {
		panic("commands: NewAddLabelHandler needs users")
	}
	return AddLabelHandler{users: users}
}

// Handle adds the label, and changes the user's level if the label does. A label of that key and
// scope already held is domain.ErrLabelExists; a user adding a private one domain.ErrLabelPrivate;
// malformed input domain.ErrLabelKeyInvalid, ErrLabelValueInvalid, ErrLabelScopeInvalid or
// ErrLabelDescriptionInvalid.
func (h AddLabelHandler) Handle(ctx context.Context, cmd AddLabel) (Result, error) {
	scope, err := labelScope(cmd.Scope)
	if err != nil {
		return Result{}, err
	}
	l := domain.Label{Key: cmd.Key, Value: cmd.Value, Scope: scope, Description: cmd.Description}
	o, err := h.users.update(ctx, cmd.UID, "AddLabel", cmd.Meta, func(u *domain.User) (change, error) {
		events, err := u.AddLabel(cmd.By, l)
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

// labelScope parses a label scope; empty means public.
func labelScope(s string) (domain.LabelScope, error) {
	if s == "" {
		return domain.ScopePublic, nil
	}
	return domain.ParseLabelScope(s)
}
