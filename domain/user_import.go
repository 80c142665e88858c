package domain

import (
	"fmt"
	"time"
)

// ImportedUser is a user brought from another system (idlog users import): its account as it
// stood there. The password hash is kept as it was made (auth verifies the imported formats) until
// the first sign-in replaces it.
type ImportedUser struct {
	NewUser                 // SignupBonus is ignored: the user did not sign up here
	CreatedAt     time.Time // when the user was created in the other system; required
	State         State     // the zero State means StateActive
	EmailVerified bool
	LoginDisabled bool          // Wekan's loginDisabled
	Labels        []Label       // added by the system, as an administrator would
	Profile       *ProfilePatch // optional; created as submitted
}

// ImportUser creates a user with its history from another system, in one batch of events to
// append to ID.Stream() with "no stream" expected: UserRegistered (carrying CreatedAt), then
// EmailVerified with the email=verified label, the other labels, the profile, LoginDisabled and
// the state, each
// checked by the same rules as the commands that record them at now.
func ImportUser(n ImportedUser, now time.Time) (*User, []Event, error) {
	if err := checkTime("created_at", n.CreatedAt); err != nil {
		return nil, nil, err
	}
	if n.CreatedAt.After(now) {
		return nil, nil, fmt.Errorf("%w: created_at %s is in the future", ErrInvalidArgument, n.CreatedAt.Format(time.RFC3339))
	}
	n.SignupBonus = 0
	u, events, err := Register(n.NewUser)
	if err != nil {
		return nil, nil, err
	}
	reg := events[0].(UserRegistered)
	reg.CreatedAt = n.CreatedAt.UTC()
	events[0] = reg
	if n.EmailVerified {
		events = append(events, u.record(EmailVerified{Email: u.email})...)
		events = append(events, u.setPrivateLabel(EmailLabelKey, LabelValueVerified)...)
	}
	for _, l := range n.Labels {
		if l.Key == EmailLabelKey && l.Scope == ScopePrivate {
			continue // follows EmailVerified above
		}
		e, err := u.AddLabel(ActorAdmin, l)
		if err != nil {
			return nil, nil, fmt.Errorf("label %s: %w", l.Key, err)
		}
		events = append(events, e...)
	}
	if n.Profile != nil {
		e, err := u.CreateProfile(*n.Profile, true, now)
		if err != nil {
			return nil, nil, fmt.Errorf("profile: %w", err)
		}
		events = append(events, e...)
	}
	if n.LoginDisabled {
		e, err := u.DisableLogin(now)
		if err != nil {
			return nil, nil, err
		}
		events = append(events, e...)
	}
	if !n.State.IsZero() && n.State != StateActive {
		e, err := u.ChangeState(n.State, "imported", now)
		if err != nil {
			return nil, nil, err
		}
		events = append(events, e...)
	}
	return u, events, nil
}
