package commands

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nyaruka/phonenumbers"

	"github.com/idlog/idlog/attempts"
	"github.com/idlog/idlog/auth"
	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/eventstore"
)

// Phones (Barong's /resource/phones): a signed-in user adds a number, a one-time code goes to it
// through the Notifier (kind NotifyPhoneCode), and the code proves it. The code is stored as an
// argon2id hash only; attempts at it go through the attempt limiter (VerifyPhone is guarded),
// and so do requests for codes (per number and per client address), which cost an SMS each.

// NotifyPhoneCode carries payload["token"]: the one-time code that proves the number it is sent to.
const NotifyPhoneCode = "phone_code"

// Phone codes.
const (
	DefaultPhoneCodeTTL = 10 * time.Minute
	phoneCodeDigits     = 6
	maxPhoneInput       = 64
)

// kindPhoneCode counts attempts at phone codes.
const kindPhoneCode = "phone_code"

// phoneKeyPrefix starts the unique key a verified number holds: a number is verified by one user
// at a time, as in Barong. CloseAccount releases it.
const phoneKeyPrefix = "phone:"

func phoneKey(e164 string) string { return phoneKeyPrefix + e164 }

// verifiedElsewhere reports whether another user than uid verified the number.
func verifiedElsewhere(ctx context.Context, users *UserStreams, uid domain.UserID, number string) error {
	owner, ok, err := users.owner(ctx, phoneKey(number))
	if err != nil {
		return err
	}
	if ok && owner != uid {
		return fmt.Errorf("%w: verified by another user", domain.ErrPhoneExists)
	}
	return nil
}

// ParsePhoneNumber reads a number as a user types it, with its country code ("+33 6 12 34 56 78";
// the "+" may be left out, as Barong allows), and returns it in E.164 with its region (ISO 3166-1
// alpha-2). A number libphonenumber does not hold valid is domain.ErrPhoneInvalid.
func ParsePhoneNumber(raw string) (e164, region string, err error) {
	s := strings.TrimSpace(raw)
	if s == "" || len(s) > maxPhoneInput {
		return "", "", fmt.Errorf("%w: %d characters", domain.ErrPhoneInvalid, len(s))
	}
	if !strings.HasPrefix(s, "+") {
		s = "+" + s
	}
	n, err := phonenumbers.Parse(s, "ZZ")
	if err != nil || !phonenumbers.IsValidNumber(n) {
		return "", "", fmt.Errorf("%w: not a valid number with its country code", domain.ErrPhoneInvalid)
	}
	region = phonenumbers.GetRegionCodeForNumber(n)
	if len(region) != 2 || region == "ZZ" || region == "001" {
		return "", "", fmt.Errorf("%w: no country", domain.ErrPhoneInvalid)
	}
	return phonenumbers.Format(n, phonenumbers.E164), region, nil
}

// phoneCodes makes, hashes, sends and limits phone codes; AddPhone and SendPhoneCode share it.
type phoneCodes struct {
	hasher *auth.PasswordHasher
	codes  codeSender
	ttl    time.Duration
	caps   codeLimits
}

// allow counts a request for a code to number from ip, or returns a ThrottledError when one of
// the counters must wait: a code costs an SMS, and a flood of them is a nuisance to the holder.
func (p phoneCodes) allow(ctx context.Context, now time.Time, number, ip string) error {
	if p.caps.limiter == nil {
		return nil
	}
	counters := []attempts.Counter{{Kind: kindCodeRequest, Key: "code-phone:" + number, Policy: p.caps.limits.CodeAccount}}
	if ip != "" {
		counters = append(counters, attempts.Counter{Kind: kindCodeRequest, Key: "code-address:" + ip, Policy: p.caps.limits.CodeAddress})
	}
	wait, err := p.caps.limiter.Try(ctx, now, counters...)
	if err != nil {
		return err
	}
	if wait > 0 {
		return &ThrottledError{Scope: ThrottleScope(kindCodeRequest), RetryAfter: wait}
	}
	return p.caps.limiter.Done(ctx, now, true, counters...)
}

// AddPhone adds a number to the signed-in user's phones and sends it a code
// (POST /resource/phones).
type AddPhone struct {
	Meta
	UID         domain.UserID
	PhoneNumber string // as typed; see ParsePhoneNumber
}

// SendPhoneCode sends a new code to one of the user's numbers not yet verified
// (POST /resource/phones/send_code).
type SendPhoneCode struct {
	Meta
	UID         domain.UserID
	PhoneNumber string
}

// VerifyPhone proves one of the user's numbers with the code sent to it
// (POST /resource/phones/verify).
type VerifyPhone struct {
	Meta
	UID         domain.UserID
	PhoneNumber string
	Code        string
}

func (c VerifyPhone) secretChecks(l LimitsConfig) []secretCheck {
	return []secretCheck{{
		counter: attempts.Counter{Kind: kindPhoneCode, Key: "phone-code:" + string(c.UID), Policy: l.OTP},
		wrong:   []error{domain.ErrPhoneCodeInvalid}, uid: c.UID, secret: domain.SecretPhoneCode,
	}}
}

// AddPhoneHandler handles AddPhone.
type AddPhoneHandler struct {
	users *UserStreams
	codes phoneCodes
}

// SendPhoneCodeHandler handles SendPhoneCode.
type SendPhoneCodeHandler struct {
	users *UserStreams
	codes phoneCodes
}

// VerifyPhoneHandler handles VerifyPhone.
type VerifyPhoneHandler struct {
	users  *UserStreams
	hasher *auth.PasswordHasher
}

func newPhoneCodes(users *UserStreams, hasher *auth.PasswordHasher, notifier Notifier, c CodesConfig) phoneCodes {
	c = c.withDefaults()
	return phoneCodes{hasher: hasher, codes: newCodeSender(users, notifier, c), ttl: c.PhoneCodeTTL}
}

// NewAddPhoneHandler returns the handler.
func NewAddPhoneHandler(users *UserStreams, hasher *auth.PasswordHasher, notifier Notifier, c CodesConfig) AddPhoneHandler {
	if users == nil || hasher == nil || notifier == nil {
		panic("commands: NewAddPhoneHandler needs users, a hasher and a notifier")
	}
	return AddPhoneHandler{users: users, codes: newPhoneCodes(users, hasher, notifier, c)}
}

// NewSendPhoneCodeHandler returns the handler.
func NewSendPhoneCodeHandler(users *UserStreams, hasher *auth.PasswordHasher, notifier Notifier, c CodesConfig) SendPhoneCodeHandler {
	if users == nil || hasher == nil || notifier == nil {
		panic("commands: NewSendPhoneCodeHandler needs users, a hasher and a notifier")
	}
	return SendPhoneCodeHandler{users: users, codes: newPhoneCodes(users, hasher, notifier, c)}
}

// NewVerifyPhoneHandler returns the handler; guard it with the attempt limiter (New does).
func NewVerifyPhoneHandler(users *UserStreams, hasher *auth.PasswordHasher) VerifyPhoneHandler {
	if users == nil || hasher == nil {
		panic("commands: NewVerifyPhoneHandler needs users and a hasher")
	}
	return VerifyPhoneHandler{users: users, hasher: hasher}
}

func (h AddPhoneHandler) limitedBy(c codeLimits) AddPhoneHandler {
	h.codes.caps = c
	return h
}

func (h SendPhoneCodeHandler) limitedBy(c codeLimits) SendPhoneCodeHandler {
	h.codes.caps = c
	return h
}

// Handle adds the phone. Errors: domain.ErrPhoneInvalid, domain.ErrPhoneExists,
// domain.ErrPhoneLimit, domain.ErrUserNotActive, ErrThrottled.
func (h AddPhoneHandler) Handle(ctx context.Context, cmd AddPhone) (Result, error) {
	number, region, err := ParsePhoneNumber(cmd.PhoneNumber)
	if err != nil {
		return Result{}, err
	}
	return h.codes.send(ctx, h.users, cmd.Meta, cmd.UID, "AddPhone", number, func(u *domain.User, hash string, expires time.Time) ([]domain.Event, error) {
		return u.AddPhone(number, region, hash, expires, h.users.now())
	})
}

// Handle sends a new code. Errors: domain.ErrPhoneInvalid, domain.ErrPhoneNotFound,
// domain.ErrPhoneAlreadyVerified, domain.ErrUserNotActive, ErrThrottled.
func (h SendPhoneCodeHandler) Handle(ctx context.Context, cmd SendPhoneCode) (Result, error) {
	number, _, err := ParsePhoneNumber(cmd.PhoneNumber)
	if err != nil {
		return Result{}, err
	}
	return h.codes.send(ctx, h.users, cmd.Meta, cmd.UID, "SendPhoneCode", number, func(u *domain.User, hash string, expires time.Time) ([]domain.Event, error) {
		return u.SendPhoneCode(number, hash, expires)
	})
}

// send checks the user would take a code (a dry run on the user as loaded, so a refused request
// spends no quota), counts the request, then records the code's hash and hands the code off.
func (p phoneCodes) send(ctx context.Context, users *UserStreams, m Meta, uid domain.UserID, command, number string,
	record func(u *domain.User, hash string, expires time.Time) ([]domain.Event, error)) (Result, error) {
	if _, err := domain.ParseUserID(string(uid)); err != nil {
		return Result{}, fmt.Errorf("%w: %w", ErrCommandInvalid, err)
	}
	u, err := users.load(ctx, uid)
	if err != nil {
		return Result{}, err
	}
	if _, err := record(u, "$argon2id$dry-run", users.now().Add(p.ttl)); err != nil {
		return Result{}, err
	}
	if err := verifiedElsewhere(ctx, users, uid, number); err != nil {
		return Result{}, err
	}
	if err := p.allow(ctx, users.now(), number, m.IP); err != nil {
		return Result{}, err
	}
	code, _ := auth.NewNumericCode(phoneCodeDigits)
	hash := p.hasher.Hash(code)
	o, err := users.update(ctx, uid, command, m, func(u *domain.User) (change, error) {
		now := users.now()
		events, err := record(u, hash, now.Add(p.ttl))
		if err != nil {
			return change{}, err
		}
		// With an outbox the code goes by SMS in the append's transaction; else codes.send below.
		return change{events: events}.withSMS(u, NotifyPhoneCode, number, code, now, now.Add(p.ttl)), nil
	})
	if err != nil {
		return Result{}, err
	}
	if err := replayedOn(o, uid); err != nil {
		return Result{}, err
	}
	if !o.replayed {
		p.codes.send(ctx, NotifyPhoneCode, string(uid), number, code)
	}
	return resultOf(o), nil
}

// Handle verifies the number, claiming its unique key in the same append. Errors:
// domain.ErrPhoneInvalid, domain.ErrPhoneNotFound, domain.ErrPhoneAlreadyVerified,
// domain.ErrPhoneCodeInvalid, domain.ErrPhoneCodeExpired, domain.ErrPhoneExists (another user
// verified the number first), domain.ErrUserNotActive.
func (h VerifyPhoneHandler) Handle(ctx context.Context, cmd VerifyPhone) (Result, error) {
	number, _, err := ParsePhoneNumber(cmd.PhoneNumber)
	if err != nil {
		return Result{}, err
	}
	code := strings.TrimSpace(cmd.Code)
	o, err := h.users.update(ctx, cmd.UID, "VerifyPhone", cmd.Meta, func(u *domain.User) (change, error) {
		events, err := u.VerifyPhone(number, func(hash string) bool {
			ok, err := h.hasher.Verify(code, hash)
			return err == nil && ok
		}, h.users.now())
		return change{events: events, claim: []string{phoneKey(number)}}, err
	})
	if errors.Is(err, eventstore.ErrKeyTaken) {
		err = fmt.Errorf("%w: verified by another user", domain.ErrPhoneExists)
	}
	if err == nil {
		err = replayedOn(o, cmd.UID)
	}
	if err != nil {
		return Result{}, err
	}
	return resultOf(o), nil
}
