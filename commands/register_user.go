package commands

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/idlog/idlog/auth"
	"github.com/idlog/idlog/domain"
)

// RegisterUser signs a new user up. Email is required and unique; Username is optional and
// unique; Password must pass auth.CheckPassword. Unless TrustEmail, an email confirmation token
// is sent to the address.
type RegisterUser struct {
	Meta
	Email    string
	Password string
	Username string
	RefID    string
	Data     json.RawMessage
	// Role is the zero Role (member) for sign-ups; only the operator's CLI sets another.
	Role domain.Role
	// TrustEmail: the operator vouches for the address; it is verified at once and no code is sent.
	TrustEmail bool
}

// RegisterUserHandler handles RegisterUser.
type RegisterUserHandler struct {
	users    *UserStreams
	hasher   *auth.PasswordHasher
	codes    codeSender
	emailTTL time.Duration
	bonus    int64
}

// NewRegisterUserHandler returns the handler. codes says how long a confirmation token is valid;
// wallet how many free coins a new user gets.
func NewRegisterUserHandler(users *UserStreams, hasher *auth.PasswordHasher, notifier Notifier, codes CodesConfig, wallet WalletConfig) RegisterUserHandler {
	if users == nil || hasher == nil || notifier == nil {
		panic("commands: NewRegisterUserHandler needs users, a password hasher and a notifier")
	}
	codes = codes.withDefaults()
	return RegisterUserHandler{users: users, hasher: hasher, codes: newCodeSender(users, notifier, codes), emailTTL: codes.EmailTokenTTL, bonus: wallet.signupBonus()}
}

// Handle registers the user. A taken email or username is ErrEmailTaken or ErrUsernameTaken;
// invalid input is a domain error (domain.ErrEmailInvalid, ...) or auth.ErrWeakPassword.
func (h RegisterUserHandler) Handle(ctx context.Context, cmd RegisterUser) (Result, error) {
	email, err := domain.NormalizeEmail(cmd.Email)
	if err != nil {
		return Result{}, err
	}
	var username string
	if cmd.Username != "" {
		if username, err = domain.NormalizeUsername(cmd.Username); err != nil {
			return Result{}, err
		}
	}
	if cmd.Password == "" {
		return Result{}, ErrMissingPassword
	}
	if err := auth.CheckPassword(cmd.Password); err != nil {
		return Result{}, err
	}
	if cmd.RefID != "" {
		ref, err := domain.ParseUserID(cmd.RefID)
		if err != nil {
			return Result{}, fmt.Errorf("%w: %w", domain.ErrRefIDInvalid, err)
		}
		if _, err := h.users.load(ctx, ref); errors.Is(err, ErrUserNotFound) {
			return Result{}, fmt.Errorf("%w: %s", ErrReferrerNotFound, ref)
		} else if err != nil {
			return Result{}, err
		}
	}
	// A taken address is refused before the costly hash; the claim in the append still decides.
	if _, taken, err := h.users.owner(ctx, emailKey(email)); err != nil {
		return Result{}, err
	} else if taken && cmd.IdempotencyKey == "" {
		return Result{}, fmt.Errorf("%w: %s", ErrEmailTaken, email)
	}
	hash := h.hasher.Hash(cmd.Password)

	now := h.users.now()
	var token string
	o, err := h.users.create(ctx, "RegisterUser", cmd.Meta, func(uid domain.UserID) (*domain.User, change, error) {
		u, events, err := domain.Register(domain.NewUser{
			ID: uid, Email: email, Username: username, PasswordHash: hash, Role: cmd.Role, RefID: cmd.RefID, Data: cmd.Data,
			SignupBonus: h.bonus, Levels: h.users.levels,
		})
		if err != nil {
			return nil, change{}, err
		}
		plain, tokenHash := newOneShotToken(uid)
		more, err := u.RequestEmailVerification(tokenHash, now.Add(h.emailTTL))
		if err != nil {
			return nil, change{}, err
		}
		events = append(events, more...)
		if cmd.TrustEmail {
			if more, err = u.VerifyEmail(tokenHash, now); err != nil {
				return nil, change{}, err
			}
			events = append(events, more...)
		}
		c := change{events: events, claim: []string{emailKey(email)}, asUser: true}
		if !cmd.TrustEmail {
			token = plain
			c = c.withCode(u, NotifyEmailConfirmation, email, plain, now, now.Add(h.emailTTL))
		}
		if username != "" {
			c.claim = append(c.claim, usernameKey(username))
		}
		return u, c, nil
	})
	if err != nil {
		return Result{}, err
	}
	if o.replayed {
		if o.user.Email() != email {
			return Result{}, fmt.Errorf("%w: registration of another address", ErrIdempotencyKeyReused)
		}
		return resultOf(o), nil
	}
	if token != "" {
		h.codes.send(ctx, NotifyEmailConfirmation, string(o.user.ID()), email, token)
	}
	return resultOf(o), nil
}
