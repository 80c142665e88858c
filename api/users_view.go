package api

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/idlog/idlog/commands"
)

// ErrUserNotFound: the users read model has no such user (yet).
var ErrUserNotFound = errors.New("api: user not found")

// UserView is a user as the users read model shows it.
type UserView struct {
	UID           string
	Email         string
	Username      string
	Role          string
	State         string
	Level         int
	OTP           bool
	EmailVerified bool
	Data          json.RawMessage
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// Users is the users read model the account routes read. ByUID returns an error matching
// ErrUserNotFound for an unknown user.
type Users interface {
	ByUID(ctx context.Context, uid string) (UserView, error)
}

// PositionWaiter is the projection runtime: WaitFor returns once every read model has applied the
// event at position, or with ctx's error.
type PositionWaiter interface {
	WaitFor(ctx context.Context, position uint64) error
}

// userJSON is Barong's user object, as GET /api/v2/resource/users/me answers it.
type userJSON struct {
	UID           string          `json:"uid"`
	Email         string          `json:"email"`
	Username      *string         `json:"username"`
	Role          string          `json:"role"`
	Level         int             `json:"level"`
	OTP           bool            `json:"otp"`
	State         string          `json:"state"`
	EmailVerified bool            `json:"email_verified"`
	Data          json.RawMessage `json:"data"`
	CreatedAt     *time.Time      `json:"created_at"`
	UpdatedAt     *time.Time      `json:"updated_at"`
}

func userJSONOf(v UserView) userJSON {
	u := userJSON{
		UID: v.UID, Email: v.Email, Role: v.Role, Level: v.Level, OTP: v.OTP, State: v.State,
		EmailVerified: v.EmailVerified, Data: v.Data,
	}
	if v.Username != "" {
		u.Username = &v.Username
	}
	if u.Data == nil {
		u.Data = json.RawMessage("null")
	}
	if !v.CreatedAt.IsZero() {
		c, up := v.CreatedAt.UTC(), v.UpdatedAt.UTC()
		u.CreatedAt, u.UpdatedAt = &c, &up
	}
	return u
}

// viewOfAccount is the answer when the read model is late: what the command left, without the
// read model's times.
func viewOfAccount(a commands.Account) UserView {
	return UserView{
		UID: a.UID, Email: a.Email, Username: a.Username, Role: a.Role, State: a.State, Level: a.Level,
		OTP: a.OTP, EmailVerified: a.EmailVerified, Data: a.Data,
	}
}
