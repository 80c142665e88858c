package commands

import (
	"context"
	"encoding/json"

	"github.com/idlog/idlog/domain"
)

// StoreData stores a titled JSON record for the signed-in user (POST /resource/data_storage).
type StoreData struct {
	Meta
	UID   domain.UserID
	Title string
	Data  json.RawMessage
}

// StoreDataHandler handles StoreData.
type StoreDataHandler struct{ users *UserStreams }

// NewStoreDataHandler returns the handler.
func NewStoreDataHandler(users *UserStreams) StoreDataHandler {
	if users == nil {
		panic("commands: NewStoreDataHandler needs users")
	}
	return StoreDataHandler{users: users}
}

// Handle stores the record. Errors: domain.ErrDataStorageTitleInvalid, domain.ErrDataStorageInvalid,
// domain.ErrDataStorageExists, domain.ErrDataStorageLimit, domain.ErrUserNotActive.
func (h StoreDataHandler) Handle(ctx context.Context, cmd StoreData) (Result, error) {
	o, err := h.users.update(ctx, cmd.UID, "StoreData", cmd.Meta, func(u *domain.User) (change, error) {
		events, err := u.StoreData(cmd.Title, cmd.Data)
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

// DeleteDataStorage is an administrator's deletion of a user's record (DELETE
// /admin/users/data_storage). It needs AbilityChangeUserState.
type DeleteDataStorage struct {
	Meta
	UID   domain.UserID
	Title string
}

// DeleteDataStorageHandler handles DeleteDataStorage.
type DeleteDataStorageHandler struct{ users *UserStreams }

// NewDeleteDataStorageHandler returns the handler.
func NewDeleteDataStorageHandler(users *UserStreams) DeleteDataStorageHandler {
	if users == nil {
		panic("commands: NewDeleteDataStorageHandler needs users")
	}
	return DeleteDataStorageHandler{users: users}
}

// Handle deletes the record. Errors: ErrNotPermitted, ErrUserNotFound,
// domain.ErrDataStorageNotFound, domain.ErrDataStorageTitleInvalid, domain.ErrAccountClosed.
func (h DeleteDataStorageHandler) Handle(ctx context.Context, cmd DeleteDataStorage) (Result, error) {
	if err := authorize(cmd.Meta, AbilityChangeUserState); err != nil {
		return Result{}, err
	}
	o, err := h.users.update(ctx, cmd.UID, "DeleteDataStorage", cmd.Meta, func(u *domain.User) (change, error) {
		if err := authorizeOn(cmd.Meta, AbilityChangeUserState, u); err != nil {
			return change{}, err
		}
		events, err := u.DeleteDataStorage(cmd.Title)
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
