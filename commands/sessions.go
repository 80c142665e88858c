package commands

import (
	"context"
	"errors"

	"github.com/idlog/idlog/auth"
	"github.com/idlog/idlog/domain"
)

// SessionCheck answers whether a session is open, from the user's event stream: the source of
// truth, read on every call (the events since the cached version), so a sign-out, a password
// change or a ban revokes tokens at once, in every process. It reads the shared rebuilt user, and
// copies nothing.
type SessionCheck struct{ users *UserStreams }

// NewSessionCheck returns the check.
func NewSessionCheck(users *UserStreams) SessionCheck {
	if users == nil {
		panic("commands: NewSessionCheck needs users")
	}
	return SessionCheck{users: users}
}

// Session is the user of an open session as they are now, which may differ from what their
// access token says (an administrator changed their role since, say).
type Session struct {
	Role  string
	Email string
	Level int
	// Cookie: a cookie session, whose unsafe requests must carry its CSRF token (CSRFMatches).
	Cookie bool
	user   *domain.User // shared: read only
	sid    string
}

// CSRFMatches reports whether token is the CSRF token of this cookie session (constant time).
func (s Session) CSRFMatches(token string) bool {
	return s.user != nil && token != "" && s.user.CSRFMatches(s.sid, auth.HashToken(token))
}

// Open reports whether the user exists, is active with sign-in enabled, and has the session open
// now, and then who they are now. An unknown or malformed user id is simply not open.
func (c SessionCheck) Open(ctx context.Context, uid, sid string) (Session, bool, error) {
	return c.open(ctx, uid, sid, func(id domain.UserID) (*domain.User, error) { return c.users.current(ctx, id) })
}

// OpenAt is Open for a caller who has just read the version of the user's last stored event in
// the same statement as their own data (0 if the stream has none; projections.ProfileView reads
// it): when this process holds the user at that version already, it answers without reading the
// store. It is as fresh as Open: a session revoked before that statement, by any process, is
// closed; the version only spares a read of events this process already has.
func (c SessionCheck) OpenAt(ctx context.Context, uid, sid string, version uint64) (Session, bool, error) {
	return c.open(ctx, uid, sid, func(id domain.UserID) (*domain.User, error) { return c.users.currentAt(ctx, id, version) })
}

func (c SessionCheck) open(ctx context.Context, uid, sid string, current func(domain.UserID) (*domain.User, error)) (Session, bool, error) {
	id, err := domain.ParseUserID(uid)
	if err != nil {
		return Session{}, false, nil
	}
	u, err := current(id)
	if errors.Is(err, ErrUserNotFound) {
		return Session{}, false, nil
	}
	if err != nil {
		return Session{}, false, err
	}
	if !u.IsActive() || u.LoginDisabled() || !u.HasSession(sid, c.users.now()) {
		return Session{}, false, nil
	}
	return Session{Role: u.Role().String(), Email: u.Email(), Level: level(u), Cookie: u.CookieSession(sid), user: u, sid: sid}, true, nil
}
