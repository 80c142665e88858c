package commands

import (
	"context"
	"errors"
	"fmt"

	"github.com/idlog/idlog/auth"
	"github.com/idlog/idlog/domain"
)

// ResetPassword replaces a forgotten password with the token sent by RequestPasswordReset. Every
// session of the user ends.
type ResetPassword struct {
	Meta
	Token           string
	Password        string
	ConfirmPassword string
}

// ResetPasswordHandler handles ResetPassword.
type ResetPasswordHandler struct {
	users  *UserStreams
	hasher *auth.PasswordHasher
}

// NewResetPasswordHandler returns the handler.
func NewResetPasswordHandler(users *UserStreams, hasher *auth.PasswordHasher) ResetPasswordHandler {
	if users == nil || hasher == nil {
		panic("commands: NewResetPasswordHandler needs users and a password hasher")
	}
	return ResetPasswordHandler{users: users, hasher: hasher}
}

// Handle resets the password. The new password must pass the rules (auth.ErrWeakPassword) and
// match its confirmation (ErrPasswordMismatch); a bad token is domain.ErrTokenInvalid or
// domain.ErrTokenExpired.
func (h ResetPasswordHandler) Handle(ctx context.Context, cmd ResetPassword) (Result, error) {
	uid, tokenHash, err := parseOneShotToken(cmd.Token)
	if err != nil {
		return Result{}, err
	}
	if err := checkNewPassword(cmd.Password, cmd.ConfirmPassword); err != nil {
		return Result{}, err
	}
	hash := h.hasher.Hash(cmd.Password)
	o, err := h.users.update(ctx, uid, "ResetPassword", cmd.Meta, func(u *domain.User) (change, error) {
		now := h.users.now()
		events, err := u.ResetPassword(tokenHash, hash, now)
		return change{events: events, asUser: true}.withNotice(u, NoticePasswordChanged, "", now, nil), err
	})
	if errors.Is(err, ErrUserNotFound) {
		return Result{}, fmt.Errorf("%w: no such user", domain.ErrTokenInvalid)
	}
	if err != nil {
		return Result{}, err
	}
	return resultOf(o), nil
}
