package commands

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/idlog/idlog/attempts"
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
	// Cookie asks for a cookie session (a browser app): the result then carries a CSRF token that
	// unsafe requests authenticated by the cookie must present.
	Cookie bool
}

// SignInResult is a new session, its access token and its refresh token.
type SignInResult struct {
	Result
	SessionID string
	Token     string
	ExpiresAt time.Time // of the access token
	// RefreshToken renews the session (RefreshSession) until SessionExpiresAt, which each refresh
	// moves on, up to the session's absolute end. Empty for a sign-in replayed by its idempotency
	// key: only its hash was kept.
	RefreshToken     string
	SessionExpiresAt time.Time
	// CSRFToken is the cookie session's CSRF token (Cookie); empty otherwise.
	CSRFToken string
}

// TokenSigner signs access tokens; *auth.Signer is one.
type TokenSigner interface {
	Sign(c auth.AccessClaims) (string, auth.AccessClaims, error)
}

// Defaults of SignInConfig.
const (
	DefaultMaxFailedSignIns      = 5
	DefaultSignInLockout         = 15 * time.Minute
	DefaultAddressMaxFailures    = 100
	DefaultAddressFailuresWindow = 15 * time.Minute
	DefaultKnownAddressTrust     = 30 * 24 * time.Hour
)

// SignInConfig sets how failed sign-ins are slowed (README.md, "Sign-in and attempt limits"). The
// zero value takes the defaults. Counters live in the attempt limiter, shared by replicas.
type SignInConfig struct {
	// MaxFailures failed sign-ins of one login are free; each further one waits after the last,
	// one minute at first, doubling up to Lockout: in the long run one guess per Lockout per
	// login. Counted by the normalised login, known or not, so unknown logins are slowed alike;
	// from an address where the login signed in before (KnownAddressTrust), failures count on
	// that (login, address) pair only, so nobody elsewhere can slow the owner there. Negative
	// turns it off; 0 means DefaultMaxFailedSignIns. Lockout 0 means DefaultSignInLockout.
	MaxFailures int
	Lockout     time.Duration
	// AddressMaxFailures failed sign-ins from one client address, whatever the login, refuse its
	// sign-ins (except at its known logins) until AddressWindow has passed since the last: a
	// ceiling high enough for the users behind one NAT. Negative turns it off.
	AddressMaxFailures int
	AddressWindow      time.Duration
	// KnownAddressTrust is how long after a successful sign-in its address stays known to its
	// login. 0 means DefaultKnownAddressTrust.
	KnownAddressTrust time.Duration
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
	if c.KnownAddressTrust == 0 {
		c.KnownAddressTrust = DefaultKnownAddressTrust
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
	case c.KnownAddressTrust < 0:
		return fmt.Errorf("commands: known address trust (%v) cannot be negative", c.KnownAddressTrust)
	}
	return nil
}

// loginPolicy slows the guesses at one login (or one login from one known address).
func (c SignInConfig) loginPolicy() attempts.Policy {
	return attempts.Policy{Free: c.MaxFailures, Delay: min(time.Minute, c.Lockout), MaxDelay: c.Lockout, Forget: max(24*time.Hour, c.Lockout)}
}

// addressPolicy is the ceiling on failures from one address: a window that restarts with each
// failure past it.
func (c SignInConfig) addressPolicy() attempts.Policy {
	return attempts.Policy{Free: c.AddressMaxFailures, Delay: c.AddressWindow, MaxDelay: c.AddressWindow, Forget: c.AddressWindow}
}

// SignInHandler handles SignIn. It is safe for concurrent use; copies share their state.
type SignInHandler struct {
	users   *UserStreams
	hasher  *auth.PasswordHasher
	sealer  *auth.Sealer
	tokens  TokenSigner
	limiter AttemptLimiter
	limits  LimitsConfig
	cfg     SignInConfig
	life    SessionsConfig
	// failure is how long recording a failed sign-in of a known user takes; an unknown login
	// waits as long, so the two cannot be told apart by time.
	failure *latency
}

// NewSignInHandler returns the handler. limits gives the policy of two-factor codes.
func NewSignInHandler(users *UserStreams, hasher *auth.PasswordHasher, sealer *auth.Sealer, tokens TokenSigner, limiter AttemptLimiter, limits LimitsConfig, cfg SignInConfig, life SessionsConfig) (SignInHandler, error) {
	if users == nil || hasher == nil || sealer == nil || tokens == nil || limiter == nil {
		panic("commands: NewSignInHandler needs users, a password hasher, a sealer, a token signer and an attempt limiter")
	}
	if err := cfg.validate(); err != nil {
		return SignInHandler{}, err
	}
	cfg = cfg.withDefaults()
	if cfg.MaxFailures > 0 {
		if err := cfg.loginPolicy().Validate(); err != nil {
			return SignInHandler{}, fmt.Errorf("commands: sign-in limits: %w", err)
		}
	}
	limits, err := limits.withDefaults()
	if err != nil {
		return SignInHandler{}, err
	}
	if life, err = life.withDefaults(); err != nil {
		return SignInHandler{}, err
	}
	return SignInHandler{
		users: users, hasher: hasher, sealer: sealer, tokens: tokens, limiter: limiter, limits: limits, cfg: cfg, life: life, failure: &latency{},
	}, nil
}

// signInFailure is a failed sign-in of a known user: recorded as LoginFailed, answered with err.
type signInFailure struct {
	reason domain.LoginFailure
	err    error
}

func (f *signInFailure) Error() string { return f.err.Error() }
func (f *signInFailure) Unwrap() error { return f.err }

// signInAttempt is what a sign-in counts against: the login's counters, chosen by whether the
// client address is known to the login.
type signInAttempt struct {
	login, ip string
	known     bool
	counters  []attempts.Counter
	// The (login, address) and the login's counters, reset by a success.
	pair, loginCounter attempts.Counter
}

// attempt picks the counters of a sign-in. From an address where the login signed in before,
// only the (login, address) pair counts; from anywhere else, the login and the address.
func (h SignInHandler) attempt(ctx context.Context, login, ip string, now time.Time) (signInAttempt, error) {
	a := signInAttempt{login: login, ip: ip}
	a.pair = attempts.Counter{Kind: string(ThrottleAccount), Key: "signin-pair:" + login + "|" + ip, Policy: h.cfg.loginPolicy()}
	a.loginCounter = attempts.Counter{Kind: string(ThrottleAccount), Key: "signin-login:" + login, Policy: h.cfg.loginPolicy()}
	if ip != "" {
		known, err := h.limiter.Trusted(ctx, "signin-known:"+login+"|"+ip, now)
		if err != nil {
			return a, err
		}
		a.known = known
	}
	if h.cfg.MaxFailures > 0 {
		if a.known {
			a.counters = append(a.counters, a.pair)
		} else {
			a.counters = append(a.counters, a.loginCounter)
		}
	}
	if !a.known && ip != "" && h.cfg.AddressMaxFailures > 0 {
		a.counters = append(a.counters, attempts.Counter{Kind: string(ThrottleAddress), Key: "signin-address:" + ip, Policy: h.cfg.addressPolicy()})
	}
	return a, nil
}

// otpCounter is the counter of the two-factor codes a sign-in presents: the user's, shared with
// the account routes; from a known address, the (user, address) pair's.
func (h SignInHandler) otpCounter(uid domain.UserID, a signInAttempt) attempts.Counter {
	if a.known {
		return h.limits.otp(string(uid) + "|" + a.ip)
	}
	return h.limits.otp(string(uid))
}

func (h SignInHandler) done(ctx context.Context, failed bool, counters ...attempts.Counter) {
	if len(counters) == 0 {
		return
	}
	if err := h.limiter.Done(context.WithoutCancel(ctx), h.users.now(), failed, counters...); err != nil {
		h.cfg.Logger.LogAttrs(ctx, slog.LevelError, "end of a sign-in attempt not recorded", slog.Any("error", err))
	}
}

// throttled is the answer to a sign-in that must wait: the same for every login, known or not.
func (h SignInHandler) throttled(ctx context.Context, cmd SignIn, scope ThrottleScope, wait time.Duration) error {
	h.cfg.Logger.LogAttrs(ctx, slog.LevelWarn, "sign-in throttled", slog.String("scope", string(scope)),
		slog.String("ip", cmd.IP), slog.String("request_id", cmd.RequestID))
	return &ThrottledError{Scope: scope, RetryAfter: wait}
}

// Handle signs the user in. Errors: ErrInvalidCredentials for an unknown login or a wrong
// password (alike in body and time), ErrThrottled (alike for every login), domain.ErrUserNotActive,
// domain.ErrLoginDisabled, domain.ErrOTPRequired, auth.ErrOTPCodeInvalid and domain.ErrOTPReplayed.
// Every failure of a known user is recorded; every guess goes through the attempt limiter.
func (h SignInHandler) Handle(ctx context.Context, cmd SignIn) (SignInResult, error) {
	now := h.users.now()
	a, err := h.attempt(ctx, normalLogin(cmd.Login), cmd.IP, now)
	if err != nil {
		return SignInResult{}, err
	}
	wait, err := h.limiter.Try(ctx, now, a.counters...)
	if err != nil {
		return SignInResult{}, err
	}
	if wait > 0 {
		return SignInResult{}, h.throttled(ctx, cmd, ThrottleAccount, wait)
	}
	uid, known, err := h.findLogin(ctx, cmd.Login)
	if err != nil {
		h.done(ctx, false, a.counters...)
		return SignInResult{}, err
	}
	start := time.Now()
	if !known || cmd.Password == "" {
		h.hasher.DummyVerify(cmd.Password)
		sleep(ctx, h.failure.get())
		h.done(ctx, true, a.counters...)
		return SignInResult{}, ErrInvalidCredentials
	}
	u, err := h.users.load(ctx, uid)
	if err != nil {
		h.done(ctx, false, a.counters...)
		return SignInResult{}, err
	}
	proof := &passwordProof{hasher: h.hasher, password: cmd.Password}
	verifying := time.Now()
	if err := proof.check(u, ErrInvalidCredentials); err != nil {
		if !errors.Is(err, ErrInvalidCredentials) {
			h.done(ctx, false, a.counters...)
			return SignInResult{}, err
		}
		// The work of the other hash cost classes present, as an unknown login's DummyVerify does.
		h.hasher.PadFailure(cmd.Password, u.PasswordHash())
		recording := time.Now()
		h.recordFailure(ctx, cmd, uid, domain.LoginFailureInvalidPassword, now)
		// What an unknown login skips: reading the user and recording the failure (not the
		// count, which both do).
		h.failure.observe(verifying.Sub(start) + time.Since(recording))
		h.done(ctx, true, a.counters...)
		return SignInResult{}, ErrInvalidCredentials
	}
	// The password is right: this was no guess at it. Its attempt stays pending (counted) until
	// the sign-in ends, then is given back: at once if the sign-in fails from here on, or with
	// the rest of a success below. A code, if any, is a guess at the second factor, and goes to
	// its own counter.
	var otp []attempts.Counter
	if cmd.OTPCode != "" {
		otp = []attempts.Counter{h.otpCounter(uid, a)}
		wait, err := h.limiter.Try(ctx, now, otp...)
		if err != nil {
			h.done(ctx, false, a.counters...)
			return SignInResult{}, err
		}
		if wait > 0 {
			h.done(ctx, false, a.counters...)
			return SignInResult{}, h.throttled(ctx, cmd, ThrottleScope(kindOTP), wait)
		}
	}
	// From an address this login has not signed in from (lately), the owner hears of it.
	res, err := h.open(ctx, cmd, uid, proof, now, cmd.IP != "" && !a.known)
	if err != nil {
		h.done(ctx, false, a.counters...)
		h.done(ctx, errors.Is(err, auth.ErrOTPCodeInvalid) || errors.Is(err, domain.ErrOTPReplayed), otp...)
		return res, err
	}
	// Signed in. In one transaction: the attempts of the password (and code) are given back; the
	// failures on the counters this sign-in went through no longer count (from a known address,
	// not the login's: those are someone else's); and the address is known to the login from now
	// on.
	reset := []attempts.Counter{a.pair}
	if !a.known {
		reset = append(reset, a.loginCounter)
	}
	var address string
	if cmd.IP != "" {
		address = "signin-known:" + a.login + "|" + a.ip
	}
	if err := h.limiter.Succeeded(context.WithoutCancel(ctx), append(slices.Clone(a.counters), otp...), reset, address, now.Add(h.cfg.KnownAddressTrust)); err != nil {
		h.cfg.Logger.LogAttrs(ctx, slog.LevelError, "end of a successful sign-in not recorded (counters, known address)", slog.Any("error", err))
	}
	return res, nil
}

// open checks the rest (state, two-factor code) and starts the session of a user whose password
// is right.
func (h SignInHandler) open(ctx context.Context, cmd SignIn, uid domain.UserID, proof *passwordProof, now time.Time, newAddress bool) (SignInResult, error) {
	idem, err := newIdempotency("SignIn", cmd.Meta)
	if err != nil {
		return SignInResult{}, err
	}
	var (
		token  string
		claims auth.AccessClaims
		start  domain.SessionStart
		fresh  sessionTokens
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
		fresh = newSessionTokens(u.ID(), sid, cmd.Cookie)
		start = h.life.start(sid, now, claims.ExpiresAt, fresh)
		start.OTPStep = step
		events, err := u.StartSession(start)
		if errors.Is(err, domain.ErrOTPReplayed) {
			return change{}, &signInFailure{domain.LoginFailureReplayedOTP, err}
		}
		if err == nil {
			events = append(events, rehashed(h.hasher, u, cmd.Password)...)
		}
		c := change{events: events, asUser: true}
		if newAddress {
			c = c.withNotice(u, NoticeNewSignIn, "", now, map[string]string{"ip": cmd.IP, "user_agent": userAgent(cmd.UserAgent)})
		}
		return c, err
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
	return SignInResult{
		Result: resultOf(o), SessionID: claims.SessionID, Token: token, ExpiresAt: claims.ExpiresAt,
		RefreshToken: fresh.refresh, SessionExpiresAt: start.ExpiresAt, CSRFToken: fresh.csrf,
	}, nil
}

// normalLogin is the key a login is counted under: the normalised email or username, or, when it
// is neither, the login lower-cased, so that every spelling of one login shares its counter.
func normalLogin(login string) string {
	if strings.Contains(login, "@") {
		if email, err := domain.NormalizeEmail(login); err == nil {
			return "email:" + email
		}
	} else if name, err := domain.NormalizeUsername(login); err == nil {
		return "username:" + name
	}
	return "other:" + strings.ToLower(strings.TrimSpace(login))
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

// recordFailure appends LoginFailed, for the activity log. A failure to record is logged: the
// sign-in fails anyway.
func (h SignInHandler) recordFailure(ctx context.Context, cmd SignIn, uid domain.UserID, reason domain.LoginFailure, at time.Time) {
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
