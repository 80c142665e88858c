package commands

import (
	"context"

	"github.com/idlog/idlog/domain"
)

// CloseAccount is an administrator deleting a user for good: every session ends, the email and
// username are released in the same append (anyone may register them again, as a new user with a
// new id who shares nothing with this one), and the read models forget the user. The history stays
// in the log. Unlike a soft delete (ChangeUserState to deleted), it cannot be undone.
type CloseAccount struct {
	Meta
	UID domain.UserID
}

// CloseAccountHandler handles CloseAccount.
type CloseAccountHandler struct{ users *UserStreams }

// NewCloseAccountHandler returns the handler.
func NewCloseAccountHandler(users *UserStreams) CloseAccountHandler {
	if users == nil {
		panic("commands: NewCloseAccountHandler needs users")
	}
	return CloseAccountHandler{users: users}
}

// Handle closes the account. Errors: ErrNotPermitted, ErrUserNotFound, domain.ErrAccountClosed.
func (h CloseAccountHandler) Handle(ctx context.Context, cmd CloseAccount) (Result, error) {
	if err := authorize(cmd.Meta, AbilityDeleteUsers); err != nil {
		return Result{}, err
	}
	o, err := h.users.update(ctx, cmd.UID, "CloseAccount", cmd.Meta, func(u *domain.User) (change, error) {
		if err := authorizeOn(cmd.Meta, AbilityDeleteUsers, u); err != nil {
			return change{}, err
		}
		events, err := u.Close(h.users.now())
		if err != nil {
			return change{}, err
		}
		c := change{events: events, release: []string{emailKey(u.Email())}}
		if u.Username() != "" {
			c.release = append(c.release, usernameKey(u.Username()))
		}
		for _, p := range u.Phones() {
			if !p.VerifiedAt.IsZero() {
				c.release = append(c.release, phoneKey(p.Number))
			}
		}
		return c, nil
	})
	if err == nil {
		err = replayedOn(o, cmd.UID)
	}
	if err != nil {
		return Result{}, err
	}
	return resultOf(o), nil
}
