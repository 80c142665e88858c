package commands_test

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/idlog/idlog/commands"
	"github.com/idlog/idlog/domain"
)

// A hash made with older, cheaper argon2 costs is made again with the current ones at the next
// sign-in, once; the password keeps working, and nothing else changes.
func TestSignInUpgradesAHashWithOlderCosts(t *testing.T) {
	t.Parallel()
	e := newEnv(t, commands.Config{}) // registers with the cheap costs
	uid := e.register(t, "rehash@example.com", "").Account.UID

	current := cheap
	current.Memory, current.Iterations = 2*cheap.Memory, cheap.Iterations+1
	hasher, sealer, _ := testSecrets(t, current, nil)
	// The same store, restarted with raised costs.
	app, err := commands.New(commands.Deps{
		Store: e.store, Keys: e.store, Registry: domain.NewEventRegistry(), Hasher: hasher, Sealer: sealer,
		Tokens: e.signer, Notifier: e.mail, Attempts: newLimiter(t),
	}, commands.Config{Streams: commands.StreamsConfig{Now: e.clock.Now}})
	if err != nil {
		t.Fatal(err)
	}
	signIn := func() {
		t.Helper()
		if _, err := app.Commands.SignIn.Handle(t.Context(), commands.SignIn{Login: "rehash@example.com", Password: strongPassword}); err != nil {
			t.Fatalf("sign-in with the password: %v", err)
		}
	}
	storedHash := func() (string, []string) {
		t.Helper()
		hash := ""
		events := e.events(t, uid)
		for _, ev := range events {
			var d struct {
				PasswordHash string `json:"password_hash"`
			}
			if err := json.Unmarshal(ev.Data, &d); err == nil && d.PasswordHash != "" {
				hash = d.PasswordHash
			}
		}
		return hash, types(events)
	}

	before, _ := storedHash()
	if !hasher.Outdated(before) {
		t.Fatalf("the registered hash %q already has the current costs: the test proves nothing", before)
	}
	signIn()
	after, kinds := storedHash()
	if want := []string{"SessionStarted", "PasswordRehashed"}; !slices.Equal(kinds[len(kinds)-2:], want) {
		t.Fatalf("events after the sign-in %v, want them to end with %v", kinds, want)
	}
	if hasher.NeedsRehash(after) || hasher.Outdated(after) {
		t.Errorf("the new hash %q does not have the current costs m=%d,t=%d", after, current.Memory, current.Iterations)
	}
	if ok, err := hasher.Verify(strongPassword, after); !ok || err != nil {
		t.Errorf("the new hash does not verify the password: %v, %v", ok, err)
	}

	// The password still works, and the current hash is not made again.
	signIn()
	_, kinds = storedHash()
	if n := count(kinds, "PasswordRehashed"); n != 1 {
		t.Errorf("%d PasswordRehashed events after two sign-ins, want 1: %v", n, kinds)
	}
	// The old application (older costs) still signs in with the upgraded hash, and does not
	// downgrade it: replicas of a rolling upgrade do not undo each other.
	e.signIn(t, "rehash@example.com", "")
	if final, kinds := storedHash(); final != after || count(kinds, "PasswordRehashed") != 1 {
		t.Errorf("a replica on the older costs changed the hash: %v", kinds)
	}
}

func count(s []string, v string) int {
	n := 0
	for _, x := range s {
		if x == v {
			n++
		}
	}
	return n
}
