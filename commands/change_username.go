package commands

import (
	"context"

	"github.com/idlog/idlog/auth"
	"github.com/idlog/idlog/domain"
)

// ChangeUsername gives a signed-in user, who proves their password, another username (or a first
// one).
type ChangeUsername struct {
	Meta
	UID      domain.UserID
	Username string
	Password string
}

// ChangeUsernameHandler handles ChangeUsername.
type ChangeUsernameHandler struct {
	users  *UserStreams
	hasher *auth.PasswordHasher
}

// NewChangeUsernameHandler returns the handler.
func NewChangeUsernameHandler(users *UserStreams, hasher *auth.PasswordHasher) ChangeUsernameHandler {
	if users == nil || hasher == nil {
		panic("commands: NewChangeUsernameHandler needs users and a password hasher")
	}
	return ChangeUsernameHandler{users: users, hasher: hasher}
}

// Handle changes the username. Errors: ErrWrongPassword, ErrUsernameTaken,
// domain.ErrUsernameInvalid, domain.ErrUnchanged.
func (h ChangeUsernameHandler) Handle(ctx context.Context, cmd ChangeUsername) (Result, error) {
	name, err := domain.NormalizeUsername(cmd.Username)
	if err != nil {
		return Result{}, err
	}
	proof := &passwordProof{hasher: h.hasher, password: cmd.Password}
	o, err := h.users.update(ctx, cmd.UID, "ChangeUsername", cmd.Meta, func(u *domain.User) (change, error) {
		if err := proof.check(u, ErrWrongPassword); err != nil {
			return change{}, err
		}
		old := u.Username()
		events, err := u.ChangeUsername(name)
		if err != nil {
			return change{}, err
		}
		c := change{events: events, claim: []string{usernameKey(name)}}
		if old != "" {
			c.release = []string{usernameKey(old)}
		}
		return c, nil
	})
	if err != nil {
		return Result{}, err
	}
	return resultOf(o), nil
}
