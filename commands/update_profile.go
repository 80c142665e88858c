package commands

import (
	"context"
	"encoding/json"
	"errors"
	"strings"

	"golang.org/x/text/language"

	"github.com/idlog/idlog/domain"
)

// UpdateProfile changes the fields of the signed-in user's profile that Profile sends, keeping the
// others (PUT /resource/profiles); Submit (confirm=true) submits it. Only a drafted profile can be
// edited, as in Barong. Settings, when not nil, replaces the user's settings whatever the
// profile's state; a request that only changes settings needs no profile.
type UpdateProfile struct {
	Meta
	UID      domain.UserID
	Profile  domain.ProfilePatch
	Submit   bool
	Settings *json.RawMessage
}

// UpdateProfileHandler handles UpdateProfile.
type UpdateProfileHandler struct{ users *UserStreams }

// NewUpdateProfileHandler returns the handler.
func NewUpdateProfileHandler(users *UserStreams) UpdateProfileHandler {
	if users == nil {
		panic("commands: NewUpdateProfileHandler needs users")
	}
	return UpdateProfileHandler{users: users}
}

// Handle updates the profile. Sending what is there already appends nothing and is not an error.
// Errors: domain.ErrProfileNotFound, domain.ErrProfileNotEditable, domain.ErrProfileInvalid,
// domain.ErrSettingsInvalid, domain.ErrUserNotActive.
func (h UpdateProfileHandler) Handle(ctx context.Context, cmd UpdateProfile) (Result, error) {
	p, err := canonicalProfile(cmd.Profile)
	if err != nil {
		return Result{}, err
	}
	onlySettings := cmd.Profile == (domain.ProfilePatch{}) && !cmd.Submit
	o, err := h.users.update(ctx, cmd.UID, "UpdateProfile", cmd.Meta, func(u *domain.User) (change, error) {
		var events []domain.Event
		if !onlySettings || cmd.Settings == nil {
			var err error
			events, err = u.UpdateProfile(p, cmd.Submit, h.users.now())
			if err != nil && !errors.Is(err, domain.ErrUnchanged) {
				return change{}, err
			}
		}
		more, err := settingsEvents(u, cmd.Settings)
		return change{events: append(events, more...)}, err
	})
	if err != nil {
		return Result{}, err
	}
	return resultOf(o), nil
}

// canonicalProfile writes a locale as the canonical form of its BCP 47 tag, which the domain (that
// carries no language registry) can only check the shape of.
func canonicalProfile(p domain.ProfilePatch) (domain.ProfilePatch, error) {
	if p.Locale != nil && strings.TrimSpace(*p.Locale) != "" {
		tag, err := language.Parse(strings.TrimSpace(*p.Locale))
		if err != nil {
			return p, &domain.ProfileFieldError{Field: "locale", Reason: "is not a BCP 47 language tag"}
		}
		s := tag.String()
		p.Locale = &s
	}
	return p, nil
}
