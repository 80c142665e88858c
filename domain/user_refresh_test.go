package domain_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/idlog/idlog/domain"
)

func run(t *testing.T, u *domain.User, c cmd) ([]domain.Event, error) {
	t.Helper()
	return c(u)
}

func mustRun(t *testing.T, u *domain.User, c cmd) []domain.Event {
	t.Helper()
	events, err := c(u)
	if err != nil {
		t.Fatal(err)
	}
	return events
}

func TestRefreshRotatesTheToken(t *testing.T) {
	t.Parallel()
	u := register(t)
	mustRun(t, u, signInRenewable("s1", at(0), "t0"))
	events := mustRun(t, u, refresh("s1", at(50), "t0", "t1"))
	want := domain.SessionRefreshed{SessionID: "s1", At: at(50), ExpiresAt: at(110), RefreshHash: tokenHash("t1")}
	if len(events) != 1 || events[0] != want {
		t.Fatalf("events = %#v, want %#v", events, want)
	}
	// Renewed past its first expiry (60 minutes).
	mustBe(t, "open at 100 min", u.HasSession("s1", at(100)), true)
	// The new token works once; the old one is now a reuse.
	mustRun(t, u, refresh("s1", at(60), "t1", "t2"))
	if _, err := run(t, u, refresh("s1", at(61), "t0", "t9")); !errors.Is(err, domain.ErrRefreshTokenReused) {
		t.Fatalf("reuse of t0 = %v, want ErrRefreshTokenReused", err)
	}
	if _, err := run(t, u, refresh("s1", at(61), "t1", "t9")); !errors.Is(err, domain.ErrRefreshTokenReused) {
		t.Fatalf("reuse of t1 = %v, want ErrRefreshTokenReused", err)
	}
	if _, err := run(t, u, refresh("s1", at(61), "forged", "t9")); !errors.Is(err, domain.ErrRefreshTokenInvalid) {
		t.Fatalf("unknown token = %v, want ErrRefreshTokenInvalid", err)
	}
	// Failures recorded nothing: t2 is still the current token.
	mustRun(t, u, refresh("s1", at(62), "t2", "t3"))
}

func TestRefreshReuseEndsTheSession(t *testing.T) {
	t.Parallel()
	u := register(t)
	mustRun(t, u, signInRenewable("s1", at(0), "t0"))
	mustRun(t, u, refresh("s1", at(1), "t0", "t1"))
	events := mustRun(t, u, revoke("s1", domain.SessionEndRefreshReuse))
	if len(events) != 1 || events[0] != (domain.SessionEnded{SessionID: "s1", Reason: domain.SessionEndRefreshReuse}) {
		t.Fatalf("events = %#v", events)
	}
	mustBe(t, "open", u.HasSession("s1", at(2)), false)
	if _, err := run(t, u, refresh("s1", at(2), "t1", "t2")); !errors.Is(err, domain.ErrRefreshTokenInvalid) {
		t.Fatalf("refresh of an ended session = %v, want ErrRefreshTokenInvalid", err)
	}
	if _, err := run(t, u, revoke("s1", domain.SessionEndRevoked)); !errors.Is(err, domain.ErrSessionNotFound) {
		t.Fatalf("revoke twice = %v, want ErrSessionNotFound", err)
	}
	if _, err := run(t, u, revoke("s1", domain.SessionEndLogout)); !errors.Is(err, domain.ErrInvalidArgument) {
		t.Fatalf("revoke for a sign-out reason = %v, want ErrInvalidArgument", err)
	}
}

func TestRefreshStopsAtTheSessionsEnd(t *testing.T) {
	t.Parallel()
	u := register(t)
	mustRun(t, u, signInRenewable("s1", at(0), "t0")) // idle 60 minutes, ends after 24 hours
	var events []domain.Event
	token := "t0"
	for m := 50; m < 24*60; m += 50 { // refreshed within every idle timeout, the last 10 minutes before its end
		events = mustRun(t, u, refresh("s1", at(m), token, fmt.Sprint("t", m)))
		token = fmt.Sprint("t", m)
	}
	mustBe(t, "expiry capped at the end", events[0].(domain.SessionRefreshed).ExpiresAt, at(24*60))
	mustBe(t, "open after its end", u.HasSession("s1", at(24*60)), false)
	if _, err := run(t, u, refresh("s1", at(24*60), token, "t2")); !errors.Is(err, domain.ErrRefreshTokenInvalid) {
		t.Fatalf("refresh at the end = %v, want ErrRefreshTokenInvalid", err)
	}
	// Idle: a session not refreshed within its expiry cannot be renewed.
	mustRun(t, u, signInRenewable("s2", at(0), "u0"))
	if _, err := run(t, u, refresh("s2", at(61), "u0", "u1")); !errors.Is(err, domain.ErrRefreshTokenInvalid) {
		t.Fatalf("refresh after the idle timeout = %v, want ErrRefreshTokenInvalid", err)
	}
	// A session without a refresh token cannot be renewed.
	mustRun(t, u, signIn("s3", at(0), 0))
	if _, err := run(t, u, refresh("s3", at(1), "", "v1")); !errors.Is(err, domain.ErrRefreshTokenInvalid) {
		t.Fatalf("refresh of a bearer-only session = %v, want ErrRefreshTokenInvalid", err)
	}
	// Nor a user who may not sign in.
	mustRun(t, u, signInRenewable("s4", at(0), "w0"))
	mustRun(t, u, disableLogin(at(1)))
	if _, err := run(t, u, refresh("s4", at(1), "w0", "w1")); !errors.Is(err, domain.ErrLoginDisabled) && !errors.Is(err, domain.ErrRefreshTokenInvalid) {
		t.Fatalf("refresh with sign-in disabled = %v", err)
	}
}

// TestRefreshKeepsTheStateBounded: however often a session is refreshed, the user's state (its
// snapshot) stays the same size, and sessions that expire are forgotten at the next refresh.
func TestRefreshKeepsTheStateBounded(t *testing.T) {
	t.Parallel()
	u := register(t)
	mustRun(t, u, signInRenewable("old", at(0), "o0"))
	mustRun(t, u, signInRenewable("s1", at(0), "t0"))
	var size int
	for i := range 2000 {
		mustRun(t, u, refresh("s1", at(1+i/100), fmt.Sprint("t", i), fmt.Sprint("t", i+1)))
		if i == 2*domain.MaxRotatedRefreshKept {
			data, err := u.Snapshot()
			if err != nil {
				t.Fatal(err)
			}
			size = len(data)
		}
	}
	data, err := u.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if len(data) > size {
		t.Fatalf("snapshot grew from %d to %d bytes over 2000 refreshes", size, len(data))
	}
	// "old" expired at 60 minutes; a refresh after that forgets it.
	mustRun(t, u, refresh("s1", at(61), "t2000", "t2001"))
	restored, err := domain.RestoreUser(mustSnapshot(t, u), 10)
	if err != nil {
		t.Fatal(err)
	}
	mustBe(t, "sessions kept", fmt.Sprint(restored.OpenSessions(at(0))), "[s1]")
	// The oldest rotated tokens are forgotten: merely unknown now.
	if _, err := run(t, u, refresh("s1", at(62), "t0", "x")); !errors.Is(err, domain.ErrRefreshTokenInvalid) {
		t.Fatalf("a token rotated long ago = %v, want ErrRefreshTokenInvalid", err)
	}
	if _, err := run(t, u, refresh("s1", at(62), fmt.Sprint("t", 2001-domain.MaxRotatedRefreshKept), "x")); !errors.Is(err, domain.ErrRefreshTokenReused) {
		t.Fatalf("a token among the last rotated = %v, want ErrRefreshTokenReused", err)
	}
}

func mustSnapshot(t *testing.T, u *domain.User) []byte {
	t.Helper()
	data, err := u.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestCSRFMatchesOnlyItsCookieSession(t *testing.T) {
	t.Parallel()
	u := register(t)
	mustRun(t, u, signInRenewable("s1", at(0), "t0"))
	mustRun(t, u, signIn("s2", at(0), 0))
	mustBe(t, "its token", u.CSRFMatches("s1", tokenHash("csrf-s1")), true)
	mustBe(t, "another token", u.CSRFMatches("s1", tokenHash("csrf-s2")), false)
	mustBe(t, "a bearer session", u.CSRFMatches("s2", tokenHash("csrf-s2")), false)
	mustBe(t, "a bearer session, empty", u.CSRFMatches("s2", ""), false)
	// A clone shares nothing the refresh changes.
	c := u.Clone()
	mustRun(t, c, refresh("s1", at(1), "t0", "t1"))
	mustRun(t, u, refresh("s1", at(1), "t0", "t1b"))
	if _, err := run(t, c, refresh("s1", at(2), "t1b", "x")); !errors.Is(err, domain.ErrRefreshTokenInvalid) {
		t.Fatalf("clone saw the original's refresh: %v", err)
	}
}
