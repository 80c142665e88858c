package commands

import (
	"context"
	"errors"

	"github.com/idlog/idlog/domain"
)

// PersonalDataEraser destroys what makes a user's personal data in the log readable: their data
// key (personaldata.Store implements it).
type PersonalDataEraser interface {
	Erase(ctx context.Context, uid domain.UserID) error
}

// ErasePersonalData erases a user's personal data (GDPR art. 17): the account is closed if it was
// open (sessions end, email and username are released), UserErased is recorded, and then the
// user's data key is destroyed, so every personal field of their history reads "[erased]" while
// the log and its proofs stay. Erasing an erased user again destroys the key again (an erasure
// that stopped between the event and the key completes) and records nothing.
type ErasePersonalData struct {
	Meta
	UID domain.UserID
}

// ErasePersonalDataHandler handles ErasePersonalData.
type ErasePersonalDataHandler struct {
	users  *UserStreams
	eraser PersonalDataEraser
}

// NewErasePersonalDataHandler returns the handler.
func NewErasePersonalDataHandler(users *UserStreams, eraser PersonalDataEraser) ErasePersonalDataHandler {
	if users == nil || eraser == nil {
		panic("commands: NewErasePersonalDataHandler needs users and a personal data eraser")
	}
	return ErasePersonalDataHandler{users: users, eraser: eraser}
}

// Handle erases. Errors: ErrNotPermitted, ErrUserNotFound.
func (h ErasePersonalDataHandler) Handle(ctx context.Context, cmd ErasePersonalData) (Result, error) {
	if err := authorize(cmd.Meta, AbilityErasePersonalData); err != nil {
		return Result{}, err
	}
	return h.erase(ctx, cmd, func(u *domain.User) error { return authorizeOn(cmd.Meta, AbilityErasePersonalData, u) })
}

// erase erases once allowed says the actor may.
func (h ErasePersonalDataHandler) erase(ctx context.Context, cmd ErasePersonalData, allowed func(u *domain.User) error) (Result, error) {
	if _, none := h.eraser.(noEraser); none {
		return Result{}, ErrErasureUnavailable
	}
	o, err := h.users.update(ctx, cmd.UID, "ErasePersonalData", cmd.Meta, func(u *domain.User) (change, error) {
		if err := allowed(u); err != nil {
			return change{}, err
		}
		closed, email, username := u.Closed(), u.Email(), u.Username()
		events, err := u.Erase(h.users.now())
		if errors.Is(err, domain.ErrErased) {
			return change{}, nil
		}
		if err != nil {
			return change{}, err
		}
		c := change{events: events}
		if !closed {
			c.release = []string{emailKey(email)}
			if username != "" {
				c.release = append(c.release, usernameKey(username))
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
	if err := h.eraser.Erase(ctx, cmd.UID); err != nil {
		return Result{}, err
	}
	h.users.forget(cmd.UID)
	return resultOf(o), nil
}

// forget drops the user from the cache of rebuilt users.
func (s *UserStreams) forget(uid domain.UserID) { s.cache.drop(uid) }

// ErrErasureUnavailable: the event store does not seal personal data, so it cannot be erased.
var ErrErasureUnavailable = errors.New("commands: personal data erasure is not available with this event store")

type noEraser struct{}

func (noEraser) Erase(context.Context, domain.UserID) error { return ErrErasureUnavailable }

func eraserOrNone(e PersonalDataEraser) PersonalDataEraser {
	if e == nil {
		return noEraser{}
	}
	return e
}

// erasingDelete is DeleteAccount followed by the erasure of the user's personal data, by the user
// themselves (Config.EraseOnDelete).
type erasingDelete struct {
	delete Handler[DeleteAccount, Result]
	erase  ErasePersonalDataHandler
}

func (h erasingDelete) Handle(ctx context.Context, cmd DeleteAccount) (Result, error) {
	if _, none := h.erase.eraser.(noEraser); none {
		return Result{}, ErrErasureUnavailable
	}
	if _, err := h.delete.Handle(ctx, cmd); err != nil {
		return Result{}, err
	}
	// A retry after a failed erasure: the delete's idempotency key gives its first answer, and the
	// erasure runs again (it does nothing once done).
	meta := cmd.Meta
	if meta.IdempotencyKey != "" {
		meta.IdempotencyKey += "/erase"
	}
	return h.erase.erase(ctx, ErasePersonalData{Meta: meta, UID: cmd.UID}, func(u *domain.User) error {
		if meta.ActorUID != string(u.ID()) {
			return ErrNotPermitted
		}
		return nil
	})
}
