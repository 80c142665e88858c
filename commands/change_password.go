package commands

import (
	"context"

	"github.com/idlog/idlog/auth"
	"github.com/idlog/idlog/domain"
)

// ChangePassword sets a new password for a signed-in user who proves the old one. Every other
// session of the user ends; SessionID, the one asking, stays open.
type ChangePassword struct {
	Meta
	UID             domain.UserID
	SessionID       string
	OldPassword     string
	NewPassword     string
	ConfirmPassword string
}

// ChangePasswordHandler handles ChangePassword.
type ChangePasswordHandler struct {
	users  *UserStreams
	hasher *auth.PasswordHasher
}

// NewChangePasswordHandler returns the handler.
func NewChangePasswordHandler(users *UserStreams, hasher *auth.PasswordHasher) ChangePasswordHandler {
	if users == nil || hasher == nil {
		panic("commands: NewChangePasswordHandler needs users and a password hasher")
	}
	return ChangePasswordHandler{users: users, hasher: hasher}
}

// Handle changes the password. Errors: ErrWrongPassword, ErrPasswordMismatch, ErrSamePassword,
// auth.ErrWeakPassword.
func (h ChangePasswordHandler) Handle(ctx context.Context, cmd ChangePassword) (Result, error) {
	if cmd.OldPassword == "" {
		return Result{}, ErrMissingPassword
	}
	if err := checkNewPassword(cmd.NewPassword, cmd.ConfirmPassword); err != nil {
		return Result{}, err
	}
	if cmd.NewPassword == cmd.OldPassword {
		return Result{}, ErrSamePassword
	}
	proof := &passwordProof{hasher: h.hasher, password: cmd.OldPassword}
	var hash string
	o, err := h.users.update(ctx, cmd.UID, "ChangePassword", cmd.Meta, func(u *domain.User) (change, error) {
		if err := proof.check(u, ErrWrongPassword); err != nil {
			return change{}, err
		}
		if hash == "" {
			hash = h.hasher.Hash(cmd.NewPassword)
		}
		now := h.users.now()
		events, err := u.ChangePassword(hash, now, cmd.SessionID)
		return change{events: events}.withNotice(u, NoticePasswordChanged, "", now, nil), err
	})
	if err != nil {
		return Result{}, err
	}
	return resultOf(o), nil
}
