package domain

import (
	"errors"
	"fmt"
	"time"
)

// ErrErased: the user's personal data was erased; nothing about them can change any more.
var ErrErased = errors.New("domain: user's personal data is erased")

// Erased marks the personal fields of events whose user was erased, as readers of the log see
// them once the user's data key is destroyed.
const Erased = "[erased]"

// UserErased: the user's personal data was erased at the request of the user or of an
// administrator (the envelope's actor says who). The data key that sealed the personal fields of
// their events is destroyed right after this event is stored, so those fields read as "[erased]"
// from now on; the events themselves, and every proof over them, stay. Consumers must delete what
// they keep of the user's personal data. The account was closed before (AccountClosed), in the
// same append if it was still open.
type UserErased struct{}

// EventType implements Event.
func (UserErased) EventType() string { return "UserErased" }

// Erased reports whether the user's personal data was erased.
func (u *User) Erased() bool { return u.erased }

// Erase records the erasure of the user's personal data. An open account is closed in the same
// change (AccountClosed and the end of every session); its email and username are then to be
// released by the caller, as Close's are. Erasing twice is ErrErased.
func (u *User) Erase(now time.Time) ([]Event, error) {
	if u.erased {
		return nil, fmt.Errorf("%w: user %s", ErrErased, u.id)
	}
	if err := checkTime("now", now); err != nil {
		return nil, err
	}
	var events []Event
	if !u.closed {
		events = append([]Event{AccountClosed{Email: u.email, Username: u.username}}, u.endSessions(now, SessionEndAccountClosed, "")...)
		u.record(events...)
	}
	return append(events, u.record(UserErased{})...), nil
}

// applyErased forgets the personal data the user's state held.
func (u *User) applyErased() {
	u.state, u.closed, u.erased = StateDeleted, true, true
	u.email, u.username, u.data, u.settings, u.profile = Erased, "", nil, nil, nil
}
