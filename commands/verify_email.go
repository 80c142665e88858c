package commands

import (
	"context"
	"errors"
	"fmt"

	"github.com/idlog/idlog/domain"
)

// VerifyEmail confirms a user's email address with the token that was sent to it.
type VerifyEmail struct {
	Meta
	Token string
}

// VerifyEmailHandler handles VerifyEmail.
type VerifyEmailHandler struct{ users *UserStreams }

// NewVerifyEmailHandler returns the handler.
func NewVerifyEmailHandler(users *UserStreams) VerifyEmailHandler {
	if users == nil {
		panic("commands: NewVerifyEmailHandler needs users")
	}
	return VerifyEmailHandler{users: users}
}

// Handle confirms the address. A token that is malformed, unknown, used or replaced is
// domain.ErrTokenInvalid; an expired one domain.ErrTokenExpired.
func (h VerifyEmailHandler) Handle(ctx context.Context, cmd VerifyEmail) (Result, error) {
	uid, hash, err := parseOneShotToken(cmd.Token)
	if err != nil {
		return Result{}, err
	}
	o, err := h.users.update(ctx, uid, "VerifyEmail", cmd.Meta, func(u *domain.User) (change, error) {
		events, err := u.VerifyEmail(hash, h.users.now())
		return change{events: events, asUser: true}, err
	})
	if errors.Is(err, ErrUserNotFound) {
		return Result{}, fmt.Errorf("%w: no such user", domain.ErrTokenInvalid)
	}
	if err != nil {
		return Result{}, err
	}
	return resultOf(o), nil
}
