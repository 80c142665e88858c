package commands

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/idlog/idlog/auth"
	"github.com/idlog/idlog/domain"
)

// Defaults of SessionsConfig.
const (
	// DefaultSessionIdleTimeout: a session not renewed for a week ends. A person who opens the app
	// weekly stays signed in; a token left on a device nobody uses stops working within days.
	DefaultSessionIdleTimeout = 7 * 24 * time.Hour
	// DefaultSessionMaxLifetime: whatever its use, a session ends after 30 days and the password
	// (and the second factor) is asked again. It bounds what a stolen refresh token is worth.
	DefaultSessionMaxLifetime = 30 * 24 * time.Hour
)

// SessionsConfig sets how long sessions last. The zero value takes the defaults.
type SessionsConfig struct {
	// IdleTimeout: a session whose refresh token is not used for this long ends. 0 means
	// DefaultSessionIdleTimeout.
	IdleTimeout time.Duration
	// MaxLifetime: a session ends this long after its sign-in, however often it was renewed. 0
	// means DefaultSessionMaxLifetime; it must not be shorter than IdleTimeout.
	MaxLifetime time.Duration
}

func (c SessionsConfig) withDefaults() (SessionsConfig, error) {
	if c.IdleTimeout < 0 || c.MaxLifetime < 0 {
		return c, fmt.Errorf("commands: session idle timeout (%s) and lifetime (%s) cannot be negative", c.IdleTimeout, c.MaxLifetime)
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultSessionIdleTimeout
	}
	if c.MaxLifetime == 0 {
		c.MaxLifetime = max(DefaultSessionMaxLifetime, c.IdleTimeout)
	}
	if c.MaxLifetime < c.IdleTimeout {
		return c, fmt.Errorf("commands: session lifetime (%s) cannot be shorter than its idle timeout (%s)", c.MaxLifetime, c.IdleTimeout)
	}
	return c, nil
}

// start is the SessionStart of a sign-in at now whose access token expires at tokenExpiry: open
// for the idle timeout (at least as long as its access token), renewable up to its lifetime.
func (c SessionsConfig) start(sid string, now, tokenExpiry time.Time, t sessionTokens) domain.SessionStart {
	ends := now.Add(c.MaxLifetime)
	expires := now.Add(c.IdleTimeout)
	if expires.Before(tokenExpiry) {
		expires = tokenExpiry
	}
	if ends.Before(expires) {
		ends = expires
	}
	return domain.SessionStart{SessionID: sid, At: now, ExpiresAt: expires, EndsAt: ends, RefreshHash: t.refreshHash, CSRFHash: t.csrfHash}
}

// sessionTokens are the secrets a session's holder gets: a refresh token, and for a cookie
// session a CSRF token. Events keep their SHA-256 only.
type sessionTokens struct {
	refresh, refreshHash string
	csrf, csrfHash       string
}

// newSessionTokens draws the tokens of session sid of uid. The refresh token names the user and
// the session, so that refreshing reads one stream, and holds 32 random bytes (auth.NewToken):
// "<uid>.<random>.<sid>". Clients treat it as opaque.
func newSessionTokens(uid domain.UserID, sid string, cookie bool) sessionTokens {
	secret, _ := auth.NewToken()
	t := sessionTokens{refresh: string(uid) + "." + secret + "." + sid}
	t.refreshHash = auth.HashToken(t.refresh)
	if cookie {
		t.csrf, t.csrfHash = auth.NewToken()
	}
	return t
}

// parseRefreshToken returns the user and session a refresh token names.
func parseRefreshToken(token string) (domain.UserID, string, bool) {
	uid, rest, ok := strings.Cut(token, ".")
	if !ok {
		return "", "", false
	}
	secret, sid, ok := strings.Cut(rest, ".")
	if !ok || len(secret) != 43 || sid == "" {
		return "", "", false
	}
	id, err := domain.ParseUserID(uid)
	if err != nil {
		return "", "", false
	}
	return id, sid, true
}

// RefreshSession renews a session with its refresh token: a new access token and a new refresh
// token, the one presented being used up (rotation).
type RefreshSession struct {
	Meta
	RefreshToken string
	// Cookie: the refresh came from a browser's cookie; a cookie session then gets a new CSRF
	// token too.
	Cookie bool
}

// RefreshSessionResult is the renewed session's new tokens.
type RefreshSessionResult struct {
	Result
	SessionID        string
	Token            string
	ExpiresAt        time.Time // of the access token
	RefreshToken     string
	SessionExpiresAt time.Time
	CSRFToken        string // a cookie session's new CSRF token (RefreshSession.Cookie); else empty
}

// RefreshSessionHandler handles RefreshSession. It costs no password hash: one read of the user's
// stream (the events since the cached version), one append, one signature.
type RefreshSessionHandler struct {
	users  *UserStreams
	tokens TokenSigner
	life   SessionsConfig
}

// NewRefreshSessionHandler returns the handler; life must have its defaults (withDefaults).
func NewRefreshSessionHandler(users *UserStreams, tokens TokenSigner, life SessionsConfig) RefreshSessionHandler {
	if users == nil || tokens == nil {
		panic("commands: NewRefreshSessionHandler needs users and a token signer")
	}
	return RefreshSessionHandler{users: users, tokens: tokens, life: life}
}

// Now is the clock of the sessions: what is open is open at Now.
func (h RefreshSessionHandler) Now() time.Time { return h.users.now() }

// Handle renews the session. Errors: domain.ErrRefreshTokenInvalid for a token that is malformed,
// of nobody, of a closed or expired session, or of a user who may no longer sign in (alike, so a
// token tells nothing about its user); domain.ErrRefreshTokenReused for a token rotated away
// already, after the session was ended for it (SessionEnded, reason refresh_token_reused): whoever
// holds its tokens, thief or owner, is signed out.
func (h RefreshSessionHandler) Handle(ctx context.Context, cmd RefreshSession) (RefreshSessionResult, error) {
	uid, sid, ok := parseRefreshToken(cmd.RefreshToken)
	if !ok {
		return RefreshSessionResult{}, fmt.Errorf("%w: malformed", domain.ErrRefreshTokenInvalid)
	}
	presented := auth.HashToken(cmd.RefreshToken)
	now := h.users.now()
	// Never replayed by an idempotency key: each use of a token is one rotation.
	meta := cmd.Meta
	meta.IdempotencyKey = ""
	var (
		token  string
		claims auth.AccessClaims
		fresh  sessionTokens
		ends   time.Time
	)
	o, err := h.users.update(ctx, uid, "", meta, func(u *domain.User) (change, error) {
		// A cookie session renewed from its cookie gets a new CSRF token; a bearer session's token
		// sent as a cookie is renewed without one.
		fresh = newSessionTokens(uid, sid, cmd.Cookie && u.CookieSession(sid))
		events, err := u.RefreshSession(domain.SessionRefresh{
			SessionID: sid, TokenHash: presented, NewHash: fresh.refreshHash, At: now, ExpiresAt: now.Add(h.life.IdleTimeout),
			NewCSRFHash: fresh.csrfHash,
		})
		if err != nil {
			return change{}, err
		}
		ends = events[0].(domain.SessionRefreshed).ExpiresAt
		token, claims, err = h.tokens.Sign(auth.AccessClaims{
			UserID: string(u.ID()), SessionID: sid, Role: u.Role().String(), Level: level(u), Email: u.Email(),
		})
		return change{events: events, asUser: true}, err
	})
	switch {
	case errors.Is(err, domain.ErrRefreshTokenReused):
		if rerr := h.endFamily(ctx, meta, uid, sid); rerr != nil {
			return RefreshSessionResult{}, rerr
		}
		return RefreshSessionResult{}, err
	case errors.Is(err, ErrUserNotFound), errors.Is(err, domain.ErrUserNotActive), errors.Is(err, domain.ErrLoginDisabled):
		return RefreshSessionResult{}, fmt.Errorf("%w: %v", domain.ErrRefreshTokenInvalid, err)
	case err != nil:
		return RefreshSessionResult{}, err
	}
	return RefreshSessionResult{
		Result: resultOf(o), SessionID: sid, Token: token, ExpiresAt: claims.ExpiresAt,
		RefreshToken: fresh.refresh, SessionExpiresAt: ends, CSRFToken: fresh.csrf,
	}, nil
}

// endFamily ends the session whose rotated refresh token came back. A session that ended
// meanwhile (a concurrent reuse) is fine: it is ended.
func (h RefreshSessionHandler) endFamily(ctx context.Context, meta Meta, uid domain.UserID, sid string) error {
	_, err := h.users.update(ctx, uid, "", meta, func(u *domain.User) (change, error) {
		events, err := u.RevokeSession(sid, domain.SessionEndRefreshReuse)
		return change{events: events, asUser: true}, err
	})
	if errors.Is(err, domain.ErrSessionNotFound) {
		return nil
	}
	return err
}

// RevokeSession is the signed-in user ending one of their sessions (another device, say) from
// their list: the session's tokens are refused from then on.
type RevokeSession struct {
	Meta
	UID       domain.UserID
	SessionID string
}

// RevokeSessionHandler handles RevokeSession.
type RevokeSessionHandler struct{ users *UserStreams }

// NewRevokeSessionHandler returns the handler.
func NewRevokeSessionHandler(users *UserStreams) RevokeSessionHandler {
	if users == nil {
		panic("commands: NewRevokeSessionHandler needs users")
	}
	return RevokeSessionHandler{users: users}
}

// Handle ends the session (SessionEnded, reason revoked). An unknown or closed session is
// domain.ErrSessionNotFound.
func (h RevokeSessionHandler) Handle(ctx context.Context, cmd RevokeSession) (Result, error) {
	o, err := h.users.update(ctx, cmd.UID, "RevokeSession", cmd.Meta, func(u *domain.User) (change, error) {
		if !u.HasSession(cmd.SessionID, h.users.now()) {
			return change{}, fmt.Errorf("%w: %q", domain.ErrSessionNotFound, cmd.SessionID)
		}
		events, err := u.RevokeSession(cmd.SessionID, domain.SessionEndRevoked)
		return change{events: events}, err
	})
	if err != nil {
		return Result{}, err
	}
	return resultOf(o), nil
}

// RevokeSessions is an administrator ending one session of a user (SessionID), or all of them
// (SessionID empty).
type RevokeSessions struct {
	Meta
	UID       domain.UserID
	SessionID string
}

// RevokeSessionsHandler handles RevokeSessions.
type RevokeSessionsHandler struct{ users *UserStreams }

// NewRevokeSessionsHandler returns the handler.
func NewRevokeSessionsHandler(users *UserStreams) RevokeSessionsHandler {
	if users == nil {
		panic("commands: NewRevokeSessionsHandler needs users")
	}
	return RevokeSessionsHandler{users: users}
}

// Handle ends the sessions (SessionEnded, reason revoked_by_admin). It needs
// AbilityChangeUserState, the ability that bans and locks, which end sessions too. Errors:
// ErrNotPermitted, ErrUserNotFound, domain.ErrSessionNotFound for one session that is not open.
// Ending all sessions of a user who has none records nothing.
func (h RevokeSessionsHandler) Handle(ctx context.Context, cmd RevokeSessions) (Result, error) {
	if err := authorize(cmd.Meta, AbilityChangeUserState); err != nil {
		return Result{}, err
	}
	o, err := h.users.update(ctx, cmd.UID, "RevokeSessions", cmd.Meta, func(u *domain.User) (change, error) {
		if err := authorizeOn(cmd.Meta, AbilityChangeUserState, u); err != nil {
			return change{}, err
		}
		now := h.users.now()
		if cmd.SessionID == "" {
			events, err := u.RevokeAllSessions(now)
			return change{events: events}, err
		}
		if !u.HasSession(cmd.SessionID, now) {
			return change{}, fmt.Errorf("%w: %q", domain.ErrSessionNotFound, cmd.SessionID)
		}
		events, err := u.RevokeSession(cmd.SessionID, domain.SessionEndRevokedByAdmin)
		return change{events: events}, err
	})
	if err == nil {
		err = replayedOn(o, cmd.UID)
	}
	if err != nil {
		return Result{}, err
	}
	return resultOf(o), nil
}
