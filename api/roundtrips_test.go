package api_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idlog/idlog/commands"
	"github.com/idlog/idlog/internal/roundtrips"
)

// TestMeRoundTrips (PostgreSQL): GET /users/me costs one round trip to the database, the bearer
// check (session open, from the user's stream) and the read models (user, labels, balances)
// together; a token whose session was revoked is refused after one round trip too. On every other
// signed-in route the bearer check alone costs one round trip: a member refused an administrator's
// route (403, after the check) costs one. Counted on the wire for the request's own statements,
// with the pool warm (each connection prepares a statement once) and the projectors stopped so
// that the pool holds only the connections the test uses.
func TestMeRoundTrips(t *testing.T) {
	s := roundTripServer(t)
	s.signUp(t, "trips@example.com", "")
	token := s.signIn(t, "trips@example.com", "")
	revoked := s.signIn(t, "trips@example.com", "")
	s.do(request{method: http.MethodDelete, path: "/api/v2/identity/sessions", token: revoked}).want(t, http.StatusNoContent)
	s.runtime.Stop()

	tripsTo := func(path, token string, status int) int64 {
		t.Helper()
		ctx, counter := roundtrips.Track(context.Background())
		s.do(request{method: http.MethodGet, path: path, token: token, ctx: ctx}).want(t, status)
		return counter.N()
	}
	trips := func(token string, status int) int64 {
		t.Helper()
		return tripsTo("/api/v2/resource/users/me", token, status)
	}
	const adminRoute = "/api/v2/admin/users/labels/list"
	for range 3 { // warm: the statements are prepared on the connection
		trips(token, http.StatusOK)
		trips(revoked, http.StatusUnauthorized)
		tripsTo(adminRoute, token, http.StatusForbidden)
	}
	for i := range 5 {
		if n := trips(token, http.StatusOK); n != 1 {
			t.Errorf("GET /users/me #%d: %d round trips, want 1", i, n)
		}
		if n := trips(revoked, http.StatusUnauthorized); n != 1 {
			t.Errorf("GET /users/me with a revoked session #%d: %d round trips, want 1", i, n)
		}
		if n := tripsTo(adminRoute, token, http.StatusForbidden); n != 1 {
			t.Errorf("the bearer check of GET %s #%d: %d round trips, want 1", adminRoute, i, n)
		}
	}
}

// TestMeRefusesSessionRevokedOnAnotherReplica: GET /users/me checks the session at the stream
// version its profile query reads, while this replica holds the user in memory at an older one:
// a sign-out, or a password change that ends the other sessions, on another replica is refused
// at once on this one.
func TestMeRefusesSessionRevokedOnAnotherReplica(t *testing.T) {
	for _, b := range backends(t) {
		for _, noVersions := range []bool{false, true} {
			// Without stream versions the profile comes from a view that cannot tell how fresh
			// the held user is (a read replica's): the session must still be checked in full.
			t.Run(fmt.Sprintf("%s/no-stream-versions=%v", b, noVersions), func(t *testing.T) {
				t.Parallel()
				meRefusesSessionRevokedOnAnotherReplica(t, newServer(t, b, serverOptions{noStreamVersions: noVersions}))
			})
		}
	}
}

func meRefusesSessionRevokedOnAnotherReplica(t *testing.T, a *server) {
	{
		b := a.replica(t, commands.SignInConfig{})
		a.signUp(t, "replicas@example.com", "")
		out := a.signIn(t, "replicas@example.com", "")
		stays := a.signIn(t, "replicas@example.com", "")
		changer := a.signIn(t, "replicas@example.com", "")
		for _, tok := range []string{out, stays} { // a holds the user now
			a.get("/api/v2/resource/users/me", tok).want(t, http.StatusOK)
		}

		b.do(request{method: http.MethodDelete, path: "/api/v2/identity/sessions", token: out}).want(t, http.StatusNoContent)
		a.get("/api/v2/resource/users/me", out).want(t, http.StatusUnauthorized, "authz.invalid_session")
		a.get("/api/v2/resource/users/me", stays).want(t, http.StatusOK)

		b.do(request{method: http.MethodPut, path: "/api/v2/resource/users/password", token: changer, body: obj{
			"old_password": password, "new_password": "another long passphrase 42", "confirm_password": "another long passphrase 42",
		}}).want(t, http.StatusOK)
		a.get("/api/v2/resource/users/me", stays).want(t, http.StatusUnauthorized, "authz.invalid_session")
		a.get("/api/v2/resource/users/me", changer).want(t, http.StatusOK)
	}
}

// TestMeReadsNoStreamItHolds, on every backend: GET /users/me checks the session at the version
// its profile statement reads, so when this process holds the user at that version it reads none
// of their stream; a change appended since (here a sign-in) makes the next one read it, once.
// The other signed-in routes check the session with one stream read each.
func TestMeReadsNoStreamItHolds(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b, func(t *testing.T) {
			t.Parallel()
			var reads atomic.Int64
			s := newServer(t, b, serverOptions{streamReads: &reads})
			s.signUp(t, "reads@example.com", "")
			token := s.signIn(t, "reads@example.com", "")
			s.get("/api/v2/resource/users/me", token).want(t, http.StatusOK)

			readsOf := func(path string, status int) int64 {
				t.Helper()
				before := reads.Load()
				s.get(path, token).want(t, status)
				return reads.Load() - before
			}
			for i := range 3 {
				if n := readsOf("/api/v2/resource/users/me", http.StatusOK); n != 0 {
					t.Errorf("GET /users/me #%d read the stream %d times, want 0", i, n)
				}
			}
			s.signIn(t, "reads@example.com", "") // appends: the user held here is behind
			for i, want := range []int64{1, 0} {
				if n := readsOf("/api/v2/resource/users/me", http.StatusOK); n != want {
					t.Errorf("GET /users/me #%d after a sign-in read the stream %d times, want %d", i, n, want)
				}
			}
			if n := readsOf("/api/v2/resource/wallet", http.StatusOK); n != 1 {
				t.Errorf("GET /wallet read the stream %d times, want 1 (the bearer check)", n)
			}
		})
	}
}

// TestSignInRoundTrips (PostgreSQL): with the pool warm, a sign-in's own statements cost one
// round trip each, 7 in all: the trusted-address mark, the login's unique key, the limiter's
// count (one statement), the user's stream (read once: the append of the session starts from
// that user), the append, the limiter's success and the user's row for the answer. It was 11
// with the limiter's count a transaction of four round trips and the stream read twice, and 18
// unprepared: lib/pq spends two round trips on a statement with arguments (it describes the
// statement first), and PostgreSQL parses and plans it every time. The read models' work runs on the
// projectors' contexts and is not counted here.
func TestSignInRoundTrips(t *testing.T) {
	s := roundTripServer(t)
	s.signUp(t, "trips-in@example.com", "")
	signIn := func() int64 {
		t.Helper()
		ctx, counter := roundtrips.Track(context.Background())
		s.do(request{method: http.MethodPost, path: "/api/v2/identity/sessions", ctx: ctx,
			body: obj{"login": "trips-in@example.com", "password": password}}).want(t, http.StatusOK)
		return counter.N()
	}
	// Warm: a statement first met in a transaction is prepared in the background (see
	// internal/stmtcache), and each connection prepares a statement once; on a loaded machine
	// that takes a few sign-ins.
	const want = 7
	for i := 0; signIn() > want; i++ {
		if i == 50 {
			t.Fatalf("50 sign-ins and none cost %d round trips or fewer", want)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Then the median of five: a sign-in that meets a connection the pool just opened prepares
	// its statements there once more.
	trips := make([]int64, 5)
	for i := range trips {
		trips[i] = signIn()
	}
	t.Logf("round trips of five sign-ins: %v", trips)
	if slices.Sort(trips); trips[2] > want {
		t.Errorf("sign-ins: %v round trips, want a median of at most %d", trips, want)
	}
}

// roundTripServer is a PostgreSQL server whose connections count their round trips; the test
// runs in parallel, and skips without PostgreSQL.
func roundTripServer(t *testing.T) *server {
	t.Helper()
	if os.Getenv("IDLOG_TEST_DATABASE_URL") == "" {
		t.Skip("PostgreSQL only: set IDLOG_TEST_DATABASE_URL")
	}
	t.Parallel()
	return newServer(t, "postgres", serverOptions{roundTrips: true})
}
