package commands

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"time"

	"github.com/idlog/idlog/attempts"
	"github.com/idlog/idlog/auth"
	"github.com/idlog/idlog/domain"
)

// AttemptLimiter is the one limiter every check of a secret and every code request goes through;
// *attempts.Limiter is one, with counters in the database that every replica shares.
type AttemptLimiter interface {
	// Try counts an attempt against every counter, or, if one must still wait, counts nothing
	// and returns the wait.
	Try(ctx context.Context, now time.Time, counters ...attempts.Counter) (time.Duration, error)
	// Done counts an admitted attempt that failed as a failure at now, and forgets any other.
	Done(ctx context.Context, now time.Time, failed bool, counters ...attempts.Counter) error
	// Reset starts the counters from zero.
	Reset(ctx context.Context, counters ...attempts.Counter) error
	// Trust marks a key trusted until a time; Trusted asks.
	Trust(ctx context.Context, key string, until time.Time) error
	Trusted(ctx context.Context, key string, now time.Time) (bool, error)
	// Succeeded does, at once, Done (not failed) for done, Reset for reset and, unless trust is
	// empty, Trust.
	Succeeded(ctx context.Context, done, reset []attempts.Counter, trust string, until time.Time) error
}

// Default policies of LimitsConfig. Why these numbers: README.md, "Sign-in and attempt limits".
var (
	// Two-factor codes per user: 5 free, then 1, 2, 4 ... minutes up to one an hour. With three
	// codes valid at once (auth.ValidateTOTP), a guess succeeds with p = 3e-6: at 24 guesses a
	// day, the expected time to find a code is 1/(3e-6 × 24) days, 38 years.
	DefaultOTPPolicy = attempts.Policy{Free: 5, Delay: time.Minute, MaxDelay: time.Hour, Forget: 24 * time.Hour}
	// A password re-entered by a signed-in user (PUT /users/password, email, username, DELETE
	// /users/me), per user: 5 free, then up to one every 15 minutes.
	DefaultPasswordPolicy = attempts.Policy{Free: 5, Delay: time.Minute, MaxDelay: 15 * time.Minute, Forget: 24 * time.Hour}
	// One-shot tokens (email confirmation, password reset), per client address: they are 256-bit
	// random, so the limit only stops hammering; per address, so nobody can block a user's reset.
	DefaultTokenPolicy = attempts.Policy{Free: 20, Delay: time.Minute, MaxDelay: time.Hour, Forget: 24 * time.Hour}
	// Code requests (confirmation email, password reset) per address asked for: 3, then one after
	// 5, 10, 20 ... minutes up to one an hour.
	DefaultCodeAccountPolicy = attempts.Policy{Free: 3, Delay: 5 * time.Minute, MaxDelay: time.Hour, Forget: 24 * time.Hour}
	// Code requests per client address, whatever the address asked for.
	DefaultCodeAddressPolicy = attempts.Policy{Free: 30, Delay: time.Minute, MaxDelay: time.Hour, Forget: 24 * time.Hour}
)

// LimitsConfig sets the attempt policies other than sign-in's (SignInConfig). A zero policy takes
// its default.
type LimitsConfig struct {
	OTP, Password, Token     attempts.Policy
	CodeAccount, CodeAddress attempts.Policy
	// Logger receives throttled attempts (never a secret). Nil discards.
	Logger *slog.Logger
}

func (c LimitsConfig) withDefaults() (LimitsConfig, error) {
	for _, p := range []struct {
		name string
		p    *attempts.Policy
		def  attempts.Policy
	}{
		{"OTP", &c.OTP, DefaultOTPPolicy}, {"Password", &c.Password, DefaultPasswordPolicy}, {"Token", &c.Token, DefaultTokenPolicy},
		{"CodeAccount", &c.CodeAccount, DefaultCodeAccountPolicy}, {"CodeAddress", &c.CodeAddress, DefaultCodeAddressPolicy},
	} {
		if *p.p == (attempts.Policy{}) {
			*p.p = p.def
		}
		if err := p.p.Validate(); err != nil {
			return c, fmt.Errorf("commands: %s attempt policy: %w", p.name, err)
		}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// The kinds of counters: the scope of a ThrottledError, and the label of the metrics.
const (
	kindPassword    = "password"
	kindOTP         = "otp"
	kindToken       = "token"
	kindCodeRequest = "code_request"
)

func (c LimitsConfig) otp(key string) attempts.Counter {
	return attempts.Counter{Kind: kindOTP, Key: "otp:" + key, Policy: c.OTP}
}

func (c LimitsConfig) reentry(uid domain.UserID) attempts.Counter {
	return attempts.Counter{Kind: kindPassword, Key: "reenter:" + string(uid), Policy: c.Password}
}

func (c LimitsConfig) token(ip string) attempts.Counter {
	return attempts.Counter{Kind: kindToken, Key: "token-address:" + ip, Policy: c.Token}
}

// secretCheck is one secret a command presents: the counter its attempt goes to, the errors that
// say the secret was wrong, and, for a signed-in user, what to record when it was.
type secretCheck struct {
	counter attempts.Counter
	wrong   []error
	// uid and secret, when set, record SecretCheckFailed on the user's stream.
	uid    domain.UserID
	secret domain.Secret
}

func (s secretCheck) failed(err error) bool {
	for _, w := range s.wrong {
		if errors.Is(err, w) {
			return true
		}
	}
	return false
}

// otpWrong are the errors of a wrong two-factor code. A replayed one counts too: otherwise a
// guess that hits a spent code would be a free hint.
var otpWrong = []error{auth.ErrOTPCodeInvalid, domain.ErrOTPReplayed}

func (c LimitsConfig) passwordCheck(uid domain.UserID) secretCheck {
	return secretCheck{counter: c.reentry(uid), wrong: []error{ErrWrongPassword}, uid: uid, secret: domain.SecretPassword}
}

func (c LimitsConfig) otpCheck(uid domain.UserID) secretCheck {
	return secretCheck{counter: c.otp(string(uid)), wrong: otpWrong, uid: uid, secret: domain.SecretOTP}
}

func (c LimitsConfig) tokenCheck(ip string) secretCheck {
	return secretCheck{counter: c.token(ip), wrong: []error{domain.ErrTokenInvalid}}
}

// presentsSecrets is a command that carries secrets: the limiter guards every handler of one
// (guard), and a test checks that every such command's handler is guarded.
type presentsSecrets interface {
	secretChecks(c LimitsConfig) []secretCheck
	meta() Meta
}

func (m Meta) meta() Meta { return m }

func (c ChangePassword) secretChecks(l LimitsConfig) []secretCheck {
	return []secretCheck{l.passwordCheck(c.UID)}
}
func (c ChangeEmail) secretChecks(l LimitsConfig) []secretCheck {
	return []secretCheck{l.passwordCheck(c.UID)}
}
func (c ChangeUsername) secretChecks(l LimitsConfig) []secretCheck {
	return []secretCheck{l.passwordCheck(c.UID)}
}
func (c DeleteAccount) secretChecks(l LimitsConfig) []secretCheck {
	return []secretCheck{l.passwordCheck(c.UID), l.otpCheck(c.UID)}
}
func (c EnableOTP) secretChecks(l LimitsConfig) []secretCheck {
	return []secretCheck{l.otpCheck(c.UID)}
}
func (c VerifyOTP) secretChecks(l LimitsConfig) []secretCheck {
	return []secretCheck{l.otpCheck(c.UID)}
}
func (c DisableOTP) secretChecks(l LimitsConfig) []secretCheck {
	return []secretCheck{l.otpCheck(c.UID)}
}
func (c VerifyEmail) secretChecks(l LimitsConfig) []secretCheck {
	return []secretCheck{l.tokenCheck(c.IP)}
}
func (c ResetPassword) secretChecks(l LimitsConfig) []secretCheck {
	return []secretCheck{l.tokenCheck(c.IP)}
}

// Handler handles one command; the guarded handlers of Commands are of this type.
type Handler[C any, R any] interface {
	Handle(ctx context.Context, cmd C) (R, error)
}

// guardian is what guarded handlers share: the limiter, the policies, and the user streams to
// record failures on.
type guardian struct {
	limiter AttemptLimiter
	limits  LimitsConfig
	users   *UserStreams
}

// guarded runs a command that presents secrets only when the limiter admits an attempt at each:
// otherwise it fails with a ThrottledError before any secret is checked. A wrong secret stays
// counted and is recorded on the user's stream; anything else gives the attempt back.
type guarded[C presentsSecrets, R any] struct {
	next Handler[C, R]
	g    *guardian
}

func guard[C presentsSecrets, R any](g *guardian, next Handler[C, R]) Handler[C, R] {
	return guarded[C, R]{next: next, g: g}
}

// Handle implements Handler.
func (h guarded[C, R]) Handle(ctx context.Context, cmd C) (R, error) {
	var zero R
	checks := cmd.secretChecks(h.g.limits)
	counters := make([]attempts.Counter, len(checks))
	for i, c := range checks {
		counters[i] = c.counter
	}
	m := cmd.meta()
	now := h.g.users.now()
	wait, err := h.g.limiter.Try(ctx, now, counters...)
	if err != nil {
		return zero, err
	}
	if wait > 0 {
		h.g.limits.Logger.LogAttrs(ctx, slog.LevelWarn, "attempt throttled", slog.String("kind", checks[0].counter.Kind),
			slog.String("uid", string(checks[0].uid)), slog.String("ip", m.IP), slog.String("request_id", m.RequestID))
		return zero, &ThrottledError{Scope: ThrottleScope(checks[0].counter.Kind), RetryAfter: wait}
	}
	r, err := h.next.Handle(ctx, cmd)
	var failed, back []attempts.Counter
	for _, c := range checks {
		if err != nil && c.failed(err) {
			failed = append(failed, c.counter)
			h.g.recordFailure(ctx, c, reflect.TypeFor[C]().Name(), m, now)
		} else {
			back = append(back, c.counter)
		}
	}
	h.g.done(ctx, true, failed)
	h.g.done(ctx, false, back)
	return r, err
}

func (g *guardian) done(ctx context.Context, failed bool, counters []attempts.Counter) {
	now := g.users.now()
	if len(counters) == 0 {
		return
	}
	// Its own deadline-free context: a client that hangs up must not keep its attempt counted, or
	// have a failure given back.
	if err := g.limiter.Done(context.WithoutCancel(ctx), now, failed, counters...); err != nil {
		g.limits.Logger.LogAttrs(ctx, slog.LevelError, "end of an attempt not recorded", slog.Any("error", err))
	}
}

// recordFailure appends SecretCheckFailed for a signed-in user's wrong secret, so the owner sees
// it in the activity log. A failure to record is logged: the command failed anyway.
func (g *guardian) recordFailure(ctx context.Context, c secretCheck, action string, m Meta, at time.Time) {
	if c.uid == "" {
		return
	}
	m.IdempotencyKey = "" // every failure counts
	_, err := g.users.update(context.WithoutCancel(ctx), c.uid, "", m, func(u *domain.User) (change, error) {
		events, err := u.FailSecretCheck(c.secret, action, at)
		return change{events: events}, err
	})
	if err != nil {
		g.limits.Logger.LogAttrs(ctx, slog.LevelError, "record a wrong secret", slog.String("uid", string(c.uid)),
			slog.String("secret", string(c.secret)), slog.Any("error", err))
	}
}
