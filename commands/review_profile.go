package commands

import (
	"context"

	"github.com/idlog/idlog/domain"
)

// ReviewProfile is an administrator's update of a user's profile (PUT /admin/profiles): the fields
// Profile sends, and State when not empty (verified or rejected, Barong's review). It needs the
// ability to judge accounts (AbilityChangeUserState).
type ReviewProfile struct {
	Meta
	UID     domain.UserID
	Profile domain.ProfilePatch
	State   domain.ProfileState
}

// ReviewProfileHandler handles ReviewProfile.
type ReviewProfileHandler struct{ users *UserStreams }

// NewReviewProfileHandler returns the handler.
func NewReviewProfileHandler(users *UserStreams) ReviewProfileHandler {
	if users == nil {
		panic("commands: NewReviewProfileHandler needs users")
	}
	return ReviewProfileHandler{users: users}
}

// Handle reviews the profile. Errors: ErrNotPermitted, ErrUserNotFound, domain.ErrProfileNotFound,
// domain.ErrProfileStateInvalid, domain.ErrProfileInvalid, domain.ErrUnchanged,
// domain.ErrAccountClosed.
func (h ReviewProfileHandler) Handle(ctx context.Context, cmd ReviewProfile) (Result, error) {
	if err := authorize(cmd.Meta, AbilityChangeUserState); err != nil {
		return Result{}, err
	}
	p, err := canonicalProfile(cmd.Profile)
	if err != nil {
		return Result{}, err
	}
	o, err := h.users.update(ctx, cmd.UID, "ReviewProfile", cmd.Meta, func(u *domain.User) (change, error) {
		if err := authorizeOn(cmd.Meta, AbilityChangeUserState, u); err != nil {
			return change{}, err
		}
		events, err := u.ReviewProfile(p, cmd.State, h.users.now())
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
