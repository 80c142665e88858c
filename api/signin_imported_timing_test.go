package api_test

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/idlog/idlog/auth"
	"github.com/idlog/idlog/commands"
	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/userimport"
)

// A wrong password of a user imported with a hash slower than argon2id (bcrypt) takes about as
// long as an unknown login and a wrong password of a user with idlog's own hash: every failed
// check does the work of each hash cost class present, so the time tells no login from another.
// As TestSignInTimingAlike: interleaved, medians, a wide tolerance, so that a loaded machine
// slows all three alike.
func TestSignInTimingAlikeWithImportedHash(t *testing.T) {
	if testing.Short() {
		t.Skip("timing test")
	}
	s := newServer(t, "sqlite", serverOptions{
		params: auth.Params{Memory: 4096, Iterations: 2, Parallelism: 1, SaltLength: 16, KeyLength: 32},
		signIn: commands.SignInConfig{MaxFailures: -1, AddressMaxFailures: -1},
	})
	s.signUp(t, "native@example.com", "")
	// bcrypt at cost 9 takes several times this argon2id's time: the gap the fix must close.
	hash, err := bcrypt.GenerateFromPassword([]byte("the imported password"), 9)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rep, err := userimport.New(s.store, s.keys, domain.NewEventRegistry()).Import(ctx,
		fmt.Appendf(nil, `{"email":"imported@example.com","password_hash":%q}`+"\n", hash), userimport.Options{})
	if err != nil || rep.Imported != 1 {
		t.Fatalf("import: %+v, %v", rep, err)
	}
	// What serve does from the password classes view at start.
	s.hasher.SetCostClasses([]string{auth.CostClass(string(hash))})

	measure := func(login string) time.Duration {
		start := time.Now()
		s.post("/api/v2/identity/sessions", obj{"login": login, "password": "wrong password here"}, "").want(t, http.StatusUnauthorized)
		return time.Since(start)
	}
	logins := []string{"native@example.com", "imported@example.com", ""}
	times := make([][]time.Duration, len(logins))
	for i := range 45 {
		for j := range logins {
			k := (i + j) % len(logins) // each kind first in turn
			login := logins[k]
			if login == "" {
				login = fmt.Sprintf("nobody%d@example.com", i)
			}
			times[k] = append(times[k], measure(login))
		}
	}
	median := func(d []time.Duration) time.Duration {
		d = d[9:]
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		return d[len(d)/2]
	}
	native, imported, unknown := median(times[0]), median(times[1]), median(times[2])
	t.Logf("median: wrong password %v, wrong password of the imported user %v, unknown login %v", native, imported, unknown)
	for _, c := range []struct {
		what string
		d    time.Duration
	}{{"the imported user's wrong password", imported}, {"the native user's wrong password", native}} {
		if ratio := float64(c.d) / float64(unknown); ratio < 0.65 || ratio > 1.35 {
			t.Errorf("%s takes %v, an unknown login %v: more than 35%% apart", c.what, c.d, unknown)
		}
	}
}
