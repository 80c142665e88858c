package commands

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/idlog/idlog/domain"
)

// UpdateUserData replaces a signed-in user's free JSON data (empty or null removes it).
type UpdateUserData struct {
	Meta
	UID  domain.UserID
	Data json.RawMessage
}

// UpdateUserDataHandler handles UpdateUserData.
type UpdateUserDataHandler struct{ users *UserStreams }

// NewUpdateUserDataHandler returns the handler.
func NewUpdateUserDataHandler(users *UserStreams) UpdateUserDataHandler {
	if users == nil {
		panic("commands: NewUpdateUserDataHandler needs users")
	}
	return UpdateUserDataHandler{users: users}
}

// Handle replaces the data. The same data again appends nothing and is not an error; invalid or
// oversized data is domain.ErrDataInvalid.
func (h UpdateUserDataHandler) Handle(ctx context.Context, cmd UpdateUserData) (Result, error) {
	o, err := h.users.update(ctx, cmd.UID, "UpdateUserData", cmd.Meta, func(u *domain.User) (change, error) {
		events, err := u.UpdateData(cmd.Data)
		if errors.Is(err, domain.ErrUnchanged) {
			return change{}, nil // a PUT that sets what is there already succeeds
		}
		return change{events: events}, err
	})
	if err != nil {
		return Result{}, err
	}
	return resultOf(o), nil
}
