package commands

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/idlog/idlog/auth"
	"github.com/idlog/idlog/domain"
)

// SignIn opens a session: Login is an email address or a username, OTPCode the current TOTP code
// when two-factor authentication is on.
type SignIn struct {
	Meta
	Login    string
	Password string
	OTPCode  string
}

// SignInResult is a new session and its access token.
type SignInResult struct {
	Result
	SessionID string
	Token     string
	ExpiresAt time.Time
}

// TokenSigner signs access tokens; *auth.Signer is one.
type TokenSigner interface {
	Sign(c auth.AccessClaims) (string, auth.AccessClaims, error)
}

// Defaults of SignInConfig.
const (
	DefaultMaxFailedSignIns      = 5
	DefaultSignInLockout         = 15 * time.Minute
	DefaultAddressMaxFailures    = 30
	DefaultAddressFailuresWindow = 15 * time.Minute
)

// SignInConfig sets how failed sign-ins are throttled. The zero value takes the defaults.
type SignInConfig struct {
	// MaxFailures failed sign-ins in a row lock the account for Lockout after the last one: a
	// sign-in then fails with ErrThrottled without its password being checked. Negative turns it
	// off; 0 means DefaultMaxFailedSignIns. Lockout 0 means DefaultSignInLockout.
	MaxFailures int
	Lockout     time.Duration
	// AddressMaxFailures failed sign-ins from one client address within AddressWindow refuse its
	// sign-ins until the window ends. Counted in memory, per process. Negative turns it off.
	AddressMaxFailures int
	AddressWindow      time.Duration
	// Logger receives throttled and failed sign-ins (never a password or a code). Nil discards.
	Logger *slog.Logger
}

func (c SignInConfig) withDefaults() SignInConfig {
	if c.MaxFailures == 0 {
		c.MaxFailures = DefaultMaxFailedSignIns
	}
	if c.Lockout == 0 {
		c.Lockout = DefaultSignInLockout
	}
	if c.AddressMaxFailures == 0 {
		c.AddressMaxFailures = DefaultAddressMaxFailures
	}
	if c.AddressWindow == 0 {
		c.AddressWindow = DefaultAddressFailuresWindow
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

func (c SignInConfig) validate() error {
	switch {
	case c.Lockout < 0:
		return fmt.Errorf("commands: sign-in lockout (%v) cannot be negative", c.Lockout)
	case c.AddressWindow < 0:
		return fmt.Errorf("commands: address failure window (%v) cannot be negative", c.AddressWindow)
	}
	return nil
}

// SignInHandler handles SignIn. It is safe for concurrent use; copies share their throttles.
type SignInHandler struct {
	users     *UserStreams
	hasher    *auth.PasswordHasher
	sealer    *auth.Sealer
	tokens    TokenSigner
	cfg       SignInConfig
	addresses *addressThrottle
	// failure is how long recording a failed sign-in of a known user takes; an unknown login
	// waits as long, so the two cannot be told apart by time.
	failure *latency
}

// NewSignInHandler returns the handler.
func NewSignInHandler(users *UserStreams, hasher *auth.PasswordHasher, sealer *auth.Sealer, tokens TokenSigner, cfg SignInConfig) (SignInHandler, error) {
	if users == nil || hasher == nil || sealer == nil || tokens == nil {
		panic("commands: NewSignInHandler needs users, a password hasher, a sealer and a token signer")
	}
	if err := cfg.validate(); err != nil {
		return SignInHandler{}, err
	}
	cfg = cfg.withDefaults()
	return SignInHandler{
		users: users, hasher: hasher, sealer: sealer, tokens: tokens, cfg: cfg,
		addresses: newAddressThrottle(cfg.AddressMaxFailures, cfg.AddressWindow), failure: &latency{},
	}, nil
}

// signInFailure is a failed sign-in of a known user: recorded as LoginFailed, answered with err.
type signInFailure struct {
	reason domain.LoginFailure
	err    error
}

func (f *signInFailure) Error() string { return f.err.Error() }
func (f *signInFailure) Unwrap() error { return f.err }

// Handle signs the user in. Errors: ErrInvalidCredentials for an unknown login or a wrong
// password (alike in body and time), ErrThrottled, domain.ErrUserNotActive,
// domain.ErrLoginDisabled, domain.ErrOTPRequired,
// auth.ErrOTPCodeInvalid and domain.ErrOTPReplayed. Every failure of a known user is recorded.
func (h SignInHandler) Handle(ctx context.Context, cmd SignIn) (SignInResult, error) {
	now := h.users.now()
	log := h.cfg.Logger
	if wait := h.addresses.blocked(cmd.IP, now); wait > 0 {
		log.LogAttrs(ctx, slog.LevelWarn, "sign-in throttled", slog.String("scope", string(ThrottleAddress)),
			slog.String("ip", cmd.IP), slog.String("request_id", cmd.RequestID))
		return SignInResult{}, &ThrottledError{Scope: ThrottleAddress, RetryAfter: wait}
	}
	uid, known, err := h.findLogin(ctx, cmd.Login)
	if err != nil {
		return SignInResult{}, err
	}
	start := time.Now()
	if !known || cmd.Password == "" {
		h.hasher.DummyVerify(cmd.Password)
		sleep(ctx, h.failure.get())
		h.addresses.fail(cmd.IP, now)
		return SignInResult{}, ErrInvalidCredentials
	}
	u, err := h.users.load(ctx, uid)
	if err != nil {
		return SignInResult{}, err
	}
	if count, last := u.FailedLogins(); h.cfg.MaxFailures > 0 && count >= h.cfg.MaxFailures && now.Sub(last) < h.cfg.Lockout {
		log.LogAttrs(ctx, slog.LevelWarn, "sign-in throttled", slog.String("scope", string(ThrottleAccount)),
			slog.String("uid", string(uid)), slog.String("ip", cmd.IP), slog.String("request_id", cmd.RequestID))
		return SignInResult{}, &ThrottledError{Scope: ThrottleAccount, RetryAfter: last.Add(h.cfg.Lockout).Sub(now)}
	}
	proof := &passwordProof{hasher: h.hasher, password: cmd.Password}
	verifying := time.Now()
	if err := proof.check(u, ErrInvalidCredentials); err != nil {
		if !errors.Is(err, ErrInvalidCredentials) {
			return SignInResult{}, err
		}
		recording := time.Now()
		h.recordFailure(ctx, cmd, uid, domain.LoginFailureInvalidPassword, now)
		// What an unknown login skips: reading the user and recording the failure.
		h.failure.observe(verifying.Sub(start) + time.Since(recording))
		return SignInResult{}, ErrInvalidCredentials
	}

	idem, err := newIdempotency("SignIn", cmd.Meta)
	if err != nil {
		return SignInResult{}, err
	}
	var (
		token  string
		claims auth.AccessClaims
	)
	o, err := h.users.update(ctx, uid, "SignIn", cmd.Meta, func(u *domain.User) (change, error) {
		if err := proof.check(u, ErrInvalidCredentials); err != nil {
			return change{}, &signInFailure{domain.LoginFailureInvalidPassword, err}
		}
		if !u.IsActive() {
			return change{}, &signInFailure{domain.LoginFailureNotActive, fmt.Errorf("%w: %s", domain.ErrUserNotActive, u.State())}
		}
		if u.LoginDisabled() {
			return change{}, &signInFailure{domain.LoginFailureLoginDisabled, domain.ErrLoginDisabled}
		}
		var step int64
		if u.OTPEnabled() {
			if cmd.OTPCode == "" {
				return change{}, &signInFailure{domain.LoginFailureMissingOTP, domain.ErrOTPRequired}
			}
			s, err := otpStep(h.sealer, u, cmd.OTPCode, now)
			if errors.Is(err, auth.ErrOTPCodeInvalid) {
				return change{}, &signInFailure{domain.LoginFailureInvalidOTP, err}
			}
			if err != nil {
				return change{}, err
			}
			step = s
		}
		sid := idem.sessionID()
		if sid == "" {
			sid = rand.Text()
		}
		var err error
		token, claims, err = h.tokens.Sign(auth.AccessClaims{
			UserID: string(u.ID()), SessionID: sid, Role: u.Role().String(), Level: level(u), Email: u.Email(),
		})
		if err != nil {
			return change{}, err
		}
		events, err := u.StartSession(domain.SessionStart{SessionID: sid, At: now, ExpiresAt: claims.ExpiresAt, OTPStep: step})
		if errors.Is(err, domain.ErrOTPReplayed) {
			return change{}, &signInFailure{domain.LoginFailureReplayedOTP, err}
		}
		if err == nil {
			events = append(events, rehashed(h.hasher, u, cmd.Password)...)
		}
		return change{events: events, asUser: true}, err
	})
	var failed *signInFailure
	if errors.As(err, &failed) {
		h.recordFailure(ctx, cmd, uid, failed.reason, now)
		return SignInResult{}, failed.err
	}
	if err != nil {
		return SignInResult{}, err
	}
	if o.replayed {
		return h.replayed(o, uid, idem)
	}
	return SignInResult{Result: resultOf(o), SessionID: claims.SessionID, Token: token, ExpiresAt: claims.ExpiresAt}, nil
}

// replayed answers a sign-in retried with its idempotency key: a new token for the session the
// first sign-in opened, if it is still open. The password was checked again before.
func (h SignInHandler) replayed(o outcome, uid domain.UserID, idem idempotency) (SignInResult, error) {
	u := o.user
	if u.ID() != uid {
		return SignInResult{}, fmt.Errorf("%w: sign-in of another user", ErrIdempotencyKeyReused)
	}
	sid := idem.sessionID()
	if !u.HasSession(sid, h.users.now()) {
		return SignInResult{}, fmt.Errorf("%w: the session of the first sign-in is closed", ErrInvalidCredentials)
	}
	token, claims, err := h.tokens.Sign(auth.AccessClaims{
		UserID: string(u.ID()), SessionID: sid, Role: u.Role().String(), Level: level(u), Email: u.Email(),
	})
	if err != nil {
		return SignInResult{}, err
	}
	return SignInResult{Result: resultOf(o), SessionID: sid, Token: token, ExpiresAt: claims.ExpiresAt}, nil
}

// findLogin returns the user a login names: an email address if it holds "@", else a username.
// A malformed login is simply unknown.
func (h SignInHandler) findLogin(ctx context.Context, login string) (domain.UserID, bool, error) {
	var key string
	if strings.Contains(login, "@") {
		email, err := domain.NormalizeEmail(login)
		if err != nil {
			return "", false, nil
		}
		key = emailKey(email)
	} else {
		name, err := domain.NormalizeUsername(login)
		if err != nil {
			return "", false, nil
		}
		key = usernameKey(name)
	}
	return h.users.owner(ctx, key)
}

// recordFailure appends LoginFailed, and counts it against the client address. A failure to record
// is logged: the sign-in fails anyway.
func (h SignInHandler) recordFailure(ctx context.Context, cmd SignIn, uid domain.UserID, reason domain.LoginFailure, at time.Time) {
	h.addresses.fail(cmd.IP, at)
	meta := cmd.Meta
	meta.IdempotencyKey = "" // every failure counts
	_, err := h.users.update(ctx, uid, "", meta, func(u *domain.User) (change, error) {
		events, err := u.FailLogin(reason, at)
		return change{events: events}, err
	})
	if err != nil {
		h.cfg.Logger.LogAttrs(ctx, slog.LevelError, "record failed sign-in", slog.String("uid", string(uid)),
			slog.String("reason", string(reason)), slog.Any("error", err))
	}
}
