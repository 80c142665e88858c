package commands

import (
	"context"
	"time"

	"github.com/idlog/idlog/auth"
	"github.com/idlog/idlog/domain"
)

// ChangeEmail moves a signed-in user, who proves their password, to another address. The new
// address is unverified until the user confirms the token sent to it.
type ChangeEmail struct {
	Meta
	UID      domain.UserID
	Email    string
	Password string
}

// ChangeEmailHandler handles ChangeEmail.
type ChangeEmailHandler struct {
	users  *UserStreams
	hasher *auth.PasswordHasher
	codes  codeSender
	ttl    time.Duration
}

// NewChangeEmailHandler returns the handler.
func NewChangeEmailHandler(users *UserStreams, hasher *auth.PasswordHasher, notifier Notifier, codes CodesConfig) ChangeEmailHandler {
	if users == nil || hasher == nil || notifier == nil {
		panic("commands: NewChangeEmailHandler needs users, a password hasher and a notifier")
	}
	codes = codes.withDefaults()
	return ChangeEmailHandler{users: users, hasher: hasher, codes: newCodeSender(users, notifier, codes), ttl: codes.EmailTokenTTL}
}

// Handle changes the address. Errors: ErrWrongPassword, ErrEmailTaken, domain.ErrEmailInvalid,
// domain.ErrUnchanged.
func (h ChangeEmailHandler) Handle(ctx context.Context, cmd ChangeEmail) (Result, error) {
	email, err := domain.NormalizeEmail(cmd.Email)
	if err != nil {
		return Result{}, err
	}
	proof := &passwordProof{hasher: h.hasher, password: cmd.Password}
	var token string
	o, err := h.users.update(ctx, cmd.UID, "ChangeEmail", cmd.Meta, func(u *domain.User) (change, error) {
		if err := proof.check(u, ErrWrongPassword); err != nil {
			return change{}, err
		}
		old := u.Email()
		events, err := u.ChangeEmail(email)
		if err != nil {
			return change{}, err
		}
		plain, hash := newOneShotToken(u.ID())
		now := h.users.now()
		more, err := u.RequestEmailVerification(hash, now.Add(h.ttl))
		if err != nil {
			return change{}, err
		}
		token = plain
		c := change{events: append(events, more...), claim: []string{emailKey(email)}, release: []string{emailKey(old)}}
		// The old address hears of the change: its owner may not be the one who made it.
		return c.withCode(u, NotifyEmailConfirmation, email, plain, now, now.Add(h.ttl)).
			withNotice(u, NoticeEmailChanged, old, now, map[string]string{"new_email": email}), nil
	})
	if err != nil {
		return Result{}, err
	}
	if !o.replayed {
		h.codes.send(ctx, NotifyEmailConfirmation, string(cmd.UID), email, token)
	}
	return resultOf(o), nil
}
