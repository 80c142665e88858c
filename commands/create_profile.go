package commands

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/idlog/idlog/domain"
)

// CreateProfile starts the signed-in user's profile (POST /resource/profiles); Submit (Barong's
// confirm=true) submits it at once for review. Settings, when not nil, replaces the user's
// settings in the same append.
type CreateProfile struct {
	Meta
	UID      domain.UserID
	Profile  domain.ProfilePatch
	Submit   bool
	Settings *json.RawMessage
}

// CreateProfileHandler handles CreateProfile.
type CreateProfileHandler struct{ users *UserStreams }

// NewCreateProfileHandler returns the handler.
func NewCreateProfileHandler(users *UserStreams) CreateProfileHandler {
	if users == nil {
		panic("commands: NewCreateProfileHandler needs users")
	}
	return CreateProfileHandler{users: users}
}

// Handle creates the profile. Errors: domain.ErrProfileExists, domain.ErrProfileInvalid (a
// *domain.ProfileFieldError names the field), domain.ErrSettingsInvalid, domain.ErrUserNotActive.
func (h CreateProfileHandler) Handle(ctx context.Context, cmd CreateProfile) (Result, error) {
	p, err := canonicalProfile(cmd.Profile)
	if err != nil {
		return Result{}, err
	}
	o, err := h.users.update(ctx, cmd.UID, "CreateProfile", cmd.Meta, func(u *domain.User) (change, error) {
		events, err := u.CreateProfile(p, cmd.Submit, h.users.now())
		if err != nil {
			return change{}, err
		}
		more, err := settingsEvents(u, cmd.Settings)
		return change{events: append(events, more...)}, err
	})
	if err != nil {
		return Result{}, err
	}
	return resultOf(o), nil
}

// settingsEvents changes the user's settings if given; the same settings again is no change.
func settingsEvents(u *domain.User, settings *json.RawMessage) ([]domain.Event, error) {
	if settings == nil {
		return nil, nil
	}
	events, err := u.ChangeSettings(*settings)
	if errors.Is(err, domain.ErrUnchanged) {
		return nil, nil
	}
	return events, err
}
