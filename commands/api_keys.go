package commands

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/idlog/idlog/auth"
	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/eventstore"
)

// API keys (Barong's APIKey): the commands that create, change and delete them, each with a TOTP
// code that the attempt limiter guards, and APIKeyCheck, which finds a key by its kid for the
// signature check (package apikeys).

// apiKeyPrefix is the unique key a kid is claimed under, so a kid finds its user's stream.
const apiKeyPrefix = "apikey:"

// APIKeySealData is the additional data a key's secret is sealed with: the secret opens only for
// that user and kid.
func APIKeySealData(uid domain.UserID, kid string) []byte {
	return []byte(apiKeyPrefix + string(uid) + ":" + kid)
}

// CreateAPIKey makes a key for a signed-in user with two-factor authentication on. KID is drawn
// when empty (16 hex digits, as Barong does).
type CreateAPIKey struct {
	Meta
	UID       domain.UserID
	KID       string
	Algorithm string
	Scopes    []string
	Code      string
}

// ChangeAPIKey sets a key's scopes or state (nil: kept).
type ChangeAPIKey struct {
	Meta
	UID    domain.UserID
	KID    string
	Scopes *[]string
	State  *domain.APIKeyState
	Code   string
}

// DeleteAPIKey removes a key.
type DeleteAPIKey struct {
	Meta
	UID  domain.UserID
	KID  string
	Code string
}

func (c CreateAPIKey) secretChecks(l LimitsConfig) []secretCheck {
	return []secretCheck{l.otpCheck(c.UID)}
}
func (c ChangeAPIKey) secretChecks(l LimitsConfig) []secretCheck {
	return []secretCheck{l.otpCheck(c.UID)}
}
func (c DeleteAPIKey) secretChecks(l LimitsConfig) []secretCheck {
	return []secretCheck{l.otpCheck(c.UID)}
}

// APIKeyResult is what a key command did, and for a creation, the key's id and its secret: the
// only time the secret is shown.
type APIKeyResult struct {
	Result
	KID    string
	Secret string
}

// APIKeysHandler handles the three key commands.
type APIKeysHandler struct {
	users  *UserStreams
	sealer *auth.Sealer
}

// NewAPIKeysHandler returns the handler.
func NewAPIKeysHandler(users *UserStreams, sealer *auth.Sealer) APIKeysHandler {
	if users == nil || sealer == nil {
		panic("commands: NewAPIKeysHandler needs users and a sealer")
	}
	return APIKeysHandler{users: users, sealer: sealer}
}

// step checks the code of a user with two-factor authentication on.
func (h APIKeysHandler) step(u *domain.User, code string) (int64, error) {
	if !u.OTPEnabled() {
		return 0, domain.ErrOTPNotEnabled
	}
	return otpStep(h.sealer, u, code, h.users.now())
}

// keyTaken turns a kid claimed by another user into domain.ErrAPIKeyExists.
func keyTaken(err error) error {
	var taken *eventstore.KeyTakenError
	if errors.As(err, &taken) && strings.HasPrefix(taken.Key, apiKeyPrefix) {
		return fmt.Errorf("%w: %w", domain.ErrAPIKeyExists, err)
	}
	return err
}

// Create handles CreateAPIKey. Errors: domain.ErrOTPNotEnabled, auth.ErrOTPCodeInvalid,
// domain.ErrOTPReplayed, domain.ErrAPIKeyInvalid, domain.ErrAPIKeyExists, domain.ErrAPIKeyLimit.
func (h APIKeysHandler) Create(ctx context.Context, cmd CreateAPIKey) (APIKeyResult, error) {
	kid := cmd.KID
	if kid == "" {
		var b [8]byte
		rand.Read(b[:]) // never fails (crypto/rand, Go 1.24+)
		kid = hex.EncodeToString(b[:])
	}
	if err := domain.CheckKID(kid); err != nil {
		return APIKeyResult{}, err
	}
	var raw [16]byte
	rand.Read(raw[:])
	secret := hex.EncodeToString(raw[:])
	sealed := h.sealer.Seal([]byte(secret), APIKeySealData(cmd.UID, kid))
	cmd.Meta.IdempotencyKey = "" // a retry must not answer without the secret it cannot show again
	o, err := h.users.update(ctx, cmd.UID, "CreateAPIKey", cmd.Meta, func(u *domain.User) (change, error) {
		step, err := h.step(u, cmd.Code)
		if err != nil {
			return change{}, err
		}
		events, err := u.CreateAPIKey(step, kid, cmd.Algorithm, cmd.Scopes, sealed)
		return change{events: events, claim: []string{apiKeyPrefix + kid}}, err
	})
	if err != nil {
		return APIKeyResult{}, keyTaken(err)
	}
	return APIKeyResult{Result: resultOf(o), KID: kid, Secret: secret}, nil
}

// Change handles ChangeAPIKey. Errors: those of Create, and domain.ErrAPIKeyNotFound.
func (h APIKeysHandler) Change(ctx context.Context, cmd ChangeAPIKey) (APIKeyResult, error) {
	o, err := h.users.update(ctx, cmd.UID, "ChangeAPIKey", cmd.Meta, func(u *domain.User) (change, error) {
		step, err := h.step(u, cmd.Code)
		if err != nil {
			return change{}, err
		}
		events, err := u.ChangeAPIKey(step, cmd.KID, cmd.Scopes, cmd.State)
		return change{events: events}, err
	})
	if err != nil {
		return APIKeyResult{}, err
	}
	return APIKeyResult{Result: resultOf(o), KID: cmd.KID}, nil
}

// Delete handles DeleteAPIKey; the kid is released. Errors: those of Change.
func (h APIKeysHandler) Delete(ctx context.Context, cmd DeleteAPIKey) (APIKeyResult, error) {
	o, err := h.users.update(ctx, cmd.UID, "DeleteAPIKey", cmd.Meta, func(u *domain.User) (change, error) {
		step, err := h.step(u, cmd.Code)
		if err != nil {
			return change{}, err
		}
		events, err := u.DeleteAPIKey(step, cmd.KID)
		return change{events: events, release: []string{apiKeyPrefix + cmd.KID}}, err
	})
	if err != nil {
		return APIKeyResult{}, err
	}
	return APIKeyResult{Result: resultOf(o), KID: cmd.KID}, nil
}

// handlerFunc adapts a method to Handler, so the limiter can guard each of the three.
type handlerFunc[C, R any] func(ctx context.Context, cmd C) (R, error)

func (f handlerFunc[C, R]) Handle(ctx context.Context, cmd C) (R, error) { return f(ctx, cmd) }

// APIKeyCheck finds a key and its owner by kid, from the owner's event stream (the source of
// truth, read on every call as SessionCheck does), so a key disabled or deleted, or an owner
// banned, is refused at once in every process.
type APIKeyCheck struct {
	users  *UserStreams
	sealer *auth.Sealer
}

// NewAPIKeyCheck returns the check.
func NewAPIKeyCheck(users *UserStreams, sealer *auth.Sealer) APIKeyCheck {
	if users == nil || sealer == nil {
		panic("commands: NewAPIKeyCheck needs users and a sealer")
	}
	return APIKeyCheck{users: users, sealer: sealer}
}

// KeyHolder is a key and its owner as they are now.
type KeyHolder struct {
	UID       string
	Role      string
	Email     string
	Level     int
	Algorithm string
	Scopes    []string
	// Active: the key is active and its owner active with sign-in enabled.
	KeyActive, OwnerActive bool
	// OwnerOTP: the owner has two-factor authentication on, which Barong requires of a key's
	// owner at every use, not only when it is made.
	OwnerOTP bool
	secret   []byte
}

// Secret is the key's secret, opened.
func (k KeyHolder) Secret() []byte { return k.secret }

// Key returns the key of that kid and its owner; ok false if no user holds it.
func (c APIKeyCheck) Key(ctx context.Context, kid string) (KeyHolder, bool, error) {
	if domain.CheckKID(kid) != nil {
		return KeyHolder{}, false, nil
	}
	uid, ok, err := c.users.owner(ctx, apiKeyPrefix+kid)
	if err != nil || !ok {
		return KeyHolder{}, false, err
	}
	u, err := c.users.current(ctx, uid)
	if errors.Is(err, ErrUserNotFound) {
		return KeyHolder{}, false, nil
	}
	if err != nil {
		return KeyHolder{}, false, err
	}
	k, ok := u.APIKey(kid)
	if !ok {
		return KeyHolder{}, false, nil
	}
	secret, err := c.sealer.Open(k.Ciphertext, APIKeySealData(uid, kid))
	if err != nil {
		return KeyHolder{}, false, fmt.Errorf("commands: open the secret of api key %s: %w", kid, err)
	}
	return KeyHolder{
		UID: string(uid), Role: u.Role().String(), Email: u.Email(), Level: level(u), Algorithm: k.Algorithm, Scopes: k.Scopes,
		KeyActive: k.State == domain.APIKeyActive, OwnerActive: u.IsActive() && !u.LoginDisabled(), OwnerOTP: u.OTPEnabled(), secret: secret,
	}, true, nil
}
