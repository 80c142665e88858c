package domain_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/idlog/idlog/domain"
)

// randomCommand draws one command of any kind at minute `now`, with arguments chosen so that many
// succeed and some fail. sids are the sessions started so far.
func randomCommand(r *rand.Rand, now int, sids *[]string) cmd {
	pick := func(xs ...string) string { return xs[r.IntN(len(xs))] }
	step := int64(1000 + now*3 + r.IntN(3))
	switch r.IntN(31) {
	case 0, 1, 2, 3, 4, 5, 6, 7:
		sid := fmt.Sprintf("s%d", len(*sids))
		*sids = append(*sids, sid)
		var otp int64
		if r.IntN(3) == 0 {
			otp = step
		}
		return signIn(sid, at(now), otp)
	case 8, 9:
		if len(*sids) == 0 {
			return signOut("none")
		}
		return signOut((*sids)[r.IntN(len(*sids))])
	case 10:
		return failLogin(domain.LoginFailureInvalidPassword, at(now))
	case 11:
		return requestEmail(pick("e1", "e2"), at(now+r.IntN(60)))
	case 12:
		return verifyEmail(pick("e1", "e2"), at(now))
	case 13:
		return requestReset(pick("r1", "r2"), at(now+r.IntN(60)))
	case 14:
		return resetPassword(pick("r1", "r2"), pick(hash1, hash2), at(now))
	case 15:
		return changePassword(pick(hash1, hash2), at(now), pick("s0", "s1", ""))
	case 16:
		return changeEmail(pick("alice@example.com", "alice@new.example", "bob@example.com"))
	case 17:
		return changeUsername(pick("alice", "alice2"))
	case 18:
		return updateData(pick(`{"lang":"fr"}`, `{"lang":"de"}`, ""))
	case 19:
		return pick2(r, genOTP(pick("sealed-1", "sealed-2")), enableOTP(step))
	case 20:
		return pick2(r, verifyOTP(step), disableOTP(step))
	case 21:
		return pick2(r, addLabel(pick2(r, admin, member), pick("email", "phone", "nickname"), pick("verified", "pending"), pick2(r, public, secret)),
			updateLabelDesc(pick2(r, admin, member), pick("email", "phone", "nickname"), pick("verified", "pending"), pick2(r, public, secret), pick("", "why")))
	case 22:
		return removeLabel(pick2(r, admin, member), pick("email", "phone", "nickname"), pick2(r, public, secret))
	case 23:
		return credit(pick2(r, domain.BalanceFree, domain.BalanceStandard), int64(1+r.IntN(500)), "deposit", pick("", "pay-1"))
	case 24:
		return pick2(r, spend(int64(1+r.IntN(300)), "order"), withdraw(int64(1+r.IntN(300)), "iban"))
	case 25:
		return changeState(pick2(r, domain.StateActive, domain.StateLocked), "", at(now))
	case 26:
		return changeRole(pick2(r, domain.RoleMember, domain.RoleSupport))
	case 27:
		return pick2(r, disableLogin(at(now)), enableLogin)
	case 28:
		return pick2(r, deleteUser(at(now)), resetOTP)
	case 29:
		// Renewable sessions and their refreshes, with tokens named by session and generation so
		// that current, rotated and unknown ones all come up.
		sid := fmt.Sprintf("r%d", r.IntN(4))
		gen := r.IntN(8)
		if r.IntN(3) == 0 {
			*sids = append(*sids, sid)
			return signInRenewable(sid, at(now), fmt.Sprintf("%s-%d", sid, gen))
		}
		return refresh(sid, at(now), fmt.Sprintf("%s-%d", sid, gen), fmt.Sprintf("%s-%d", sid, gen+1))
	default:
		if r.IntN(20) == 0 {
			return closeUser(at(now))
		}
		return changeState(domain.StateActive, "back", at(now))
	}
}

func pick2[T any](r *rand.Rand, a, b T) T {
	if r.IntN(2) == 0 {
		return a
	}
	return b
}

// decodeAll passes events through JSON and the registry, as the store gives them back.
func decodeAll(t *testing.T, events []domain.Event) []domain.Event {
	t.Helper()
	reg := domain.NewEventRegistry()
	out := make([]domain.Event, len(events))
	for i, e := range events {
		data, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		if out[i], err = reg.Decode(e.EventType(), 1, data); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// sameUser fails unless a and b look the same in every way: their accessors at several times,
// their snapshots, and the answers and events of every probing command run on copies of both.
func sameUser(t *testing.T, what string, a, b *domain.User, now int) {
	t.Helper()
	if va, vb := viewOf(a), viewOf(b); !reflect.DeepEqual(va, vb) {
		t.Fatalf("%s: users differ:\n%+v\n%+v", what, va, vb)
	}
	if a.Version() != b.Version() {
		t.Fatalf("%s: versions %d and %d", what, a.Version(), b.Version())
	}
	for _, m := range []int{now - 20, now, now + 10, now + 100} {
		if sa, sb := a.OpenSessions(at(m)), b.OpenSessions(at(m)); !slices.Equal(sa, sb) {
			t.Fatalf("%s: sessions open at %d: %v and %v", what, m, sa, sb)
		}
	}
	sa, err := a.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sb, err := b.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if string(sa) != string(sb) {
		t.Fatalf("%s: snapshots differ:\n%s\n%s", what, sa, sb)
	}
	for i, probe := range []cmd{
		verifyEmail("e1", at(now)), verifyEmail("e2", at(now)), resetPassword("r1", hash2, at(now)), resetPassword("r2", hash1, at(now)),
		signIn("probe", at(now), 0), signIn("probe", at(now), int64(1000+now*3+5)), signIn("s0", at(now), 0), signOut("s1"), signOut("s3"),
		refresh("r0", at(now), "r0-1", "r0-2"), refresh("r1", at(now), "r1-0", "r1-1"), revoke("r2", domain.SessionEndRevoked),
		spend(100, ""), withdraw(50, ""), enableOTP(int64(1000 + now*3 + 5)), removeLabel(admin, "email", secret),
		addLabel(member, "phone", "pending", public), changeState(domain.StateBanned, "", at(now)),
	} {
		ea, erra := probe(a.Clone())
		eb, errb := probe(b.Clone())
		if fmt.Sprint(erra) != fmt.Sprint(errb) || !reflect.DeepEqual(ea, eb) {
			t.Fatalf("%s: probe %d gives %v, %v and %v, %v", what, i, types(ea), erra, types(eb), errb)
		}
	}
}

// TestSnapshotRestoresTheRehydratedUser: for random histories, a user restored from the snapshot
// of any prefix and advanced with the rest equals the user rehydrated from the whole history, and
// further commands on either give the same events and the same users.
func TestSnapshotRestoresTheRehydratedUser(t *testing.T) {
	t.Parallel()
	for seed := range uint64(60) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel()
			r := rand.New(rand.NewPCG(seed, 13))
			limit := []int{0, 1, 3}[seed%3] // 0: the default limit
			live, history, err := domain.Register(domain.NewUser{ID: uid, Email: "alice@example.com", PasswordHash: hash1, SignupBonus: 100})
			if err != nil {
				t.Fatal(err)
			}
			live.LimitSessions(limit)
			var sids []string
			now := 0
			for range 40 + r.IntN(120) {
				now += r.IntN(8)
				events, err := randomCommand(r, now, &sids)(live)
				if err == nil {
					history = append(history, events...)
				}
			}
			history = decodeAll(t, history)
			whole, err := domain.RehydrateUser(history)
			if err != nil {
				t.Fatal(err)
			}
			whole.LimitSessions(limit)
			for _, k := range []int{1, len(history) / 3, len(history) / 2, len(history) - 1, len(history)} {
				prefix, err := domain.RehydrateUser(history[:k])
				if err != nil {
					t.Fatal(err)
				}
				data, err := prefix.Snapshot()
				if err != nil {
					t.Fatal(err)
				}
				restored, err := domain.RestoreUser(data, uint64(k))
				if err != nil {
					t.Fatalf("restore the snapshot at %d: %v\n%s", k, err, data)
				}
				sameUser(t, fmt.Sprintf("restored at %d", k), restored, prefix, now)
				if err := restored.Advance(history[k:]); err != nil {
					t.Fatal(err)
				}
				restored.LimitSessions(limit)
				sameUser(t, fmt.Sprintf("restored at %d and advanced", k), restored, whole, now)
				// Carry on: the same commands on both keep them equal.
				a, b := restored.Clone(), whole.Clone()
				cr := rand.New(rand.NewPCG(seed, uint64(k)))
				cs := slices.Clone(sids)
				later := now
				for range 30 {
					later += cr.IntN(8)
					c := randomCommand(cr, later, &cs)
					ea, erra := c(a)
					eb, errb := c(b)
					if fmt.Sprint(erra) != fmt.Sprint(errb) || !reflect.DeepEqual(ea, eb) {
						t.Fatalf("after restoring at %d: %v, %v and %v, %v", k, types(ea), erra, types(eb), errb)
					}
				}
				sameUser(t, fmt.Sprintf("restored at %d, then commanded", k), a, b, later)
			}
			// The user the commands changed (its Version stays where it was loaded) is the same too.
			wantSnap, _ := whole.Snapshot()
			if got, _ := live.Snapshot(); string(got) != string(wantSnap) || !reflect.DeepEqual(viewOf(live), viewOf(whole)) {
				t.Fatalf("rehydrated user differs from the live one:\n%s\n%s", got, wantSnap)
			}
		})
	}
}

func TestRestoreUserRefusesWhatIsNotASnapshot(t *testing.T) {
	t.Parallel()
	u := register(t)
	good, err := u.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]any
	if err := json.Unmarshal(good, &fields); err != nil {
		t.Fatal(err)
	}
	with := func(k string, v any) []byte {
		m := map[string]any{}
		for k, v := range fields {
			m[k] = v
		}
		m[k] = v
		b, _ := json.Marshal(m)
		return b
	}
	for name, data := range map[string][]byte{
		"garbage":      []byte("not json"),
		"empty":        nil,
		"other schema": with("schema", domain.UserSnapshotSchema+1),
		"no schema":    with("schema", 0),
		"bad uid":      with("uid", "bob"),
		"bad role":     with("role", "king"),
	} {
		if _, err := domain.RestoreUser(data, 1); !errors.Is(err, domain.ErrSnapshotSchema) && !errors.Is(err, domain.ErrRoleInvalid) {
			t.Errorf("%s: RestoreUser = %v, want ErrSnapshotSchema", name, err)
		}
	}
	if _, err := domain.RestoreUser(good, 0); !errors.Is(err, domain.ErrSnapshotSchema) {
		t.Errorf("version 0: RestoreUser = %v, want ErrSnapshotSchema", err)
	}
}

func TestSessionLimitEndsTheOldestSessions(t *testing.T) {
	t.Parallel()
	u := register(t)
	u.LimitSessions(2)
	for i, c := range []cmd{signIn("a", at(0), 0), signIn("b", at(1), 0)} {
		if _, err := c(u); err != nil {
			t.Fatalf("sign-in %d: %v", i, err)
		}
	}
	events, err := signIn("c", at(2), 0)(u)
	if err != nil {
		t.Fatal(err)
	}
	want := []domain.Event{
		domain.SessionEnded{SessionID: "a", Reason: domain.SessionEndSessionLimit},
		domain.SessionStarted{SessionID: "c", At: at(2), ExpiresAt: at(17)},
	}
	if !reflect.DeepEqual(events, want) {
		t.Fatalf("events = %+v, want %+v", events, want)
	}
	mustBe(t, "open sessions", fmt.Sprint(u.OpenSessions(at(2))), "[b c]")
	// Expired sessions do not count: at minute 17 only c is open, so d ends nothing.
	events, err = signIn("d", at(17), 0)(u)
	if err != nil {
		t.Fatal(err)
	}
	mustBe(t, "events", fmt.Sprint(types(events)), "[SessionStarted]")
	// A user over the limit (a history from before it) loses all the oldest at the next sign-in.
	u.LimitSessions(1)
	events, err = signIn("e", at(18), 0)(u)
	if err != nil {
		t.Fatal(err)
	}
	want = []domain.Event{
		domain.SessionEnded{SessionID: "d", Reason: domain.SessionEndSessionLimit},
		domain.SessionStarted{SessionID: "e", At: at(18), ExpiresAt: at(33)},
	}
	if !reflect.DeepEqual(events, want) {
		t.Fatalf("events = %+v, want %+v", events, want)
	}
}

// TestSessionLimitEndsAtMostAThousandAtOnce: a history from before the limit may hold thousands of
// open sessions; a sign-in ends the oldest thousand, so its events fit one append, and the next
// sign-ins end the rest.
func TestSessionLimitEndsAtMostAThousandAtOnce(t *testing.T) {
	t.Parallel()
	u := register(t)
	u.LimitSessions(domain.MaxSessionLimit)
	for i := range 1500 {
		if _, err := signIn(fmt.Sprint("s", i), at(0), 0)(u); err != nil {
			t.Fatal(err)
		}
	}
	u.LimitSessions(10)
	events, err := signIn("next", at(1), 0)(u)
	if err != nil {
		t.Fatal(err)
	}
	mustBe(t, "events of the first sign-in", len(events), 1001)
	mustBe(t, "open sessions after it", len(u.OpenSessions(at(1))), 501)
	events, err = signIn("again", at(1), 0)(u)
	if err != nil {
		t.Fatal(err)
	}
	mustBe(t, "events of the second sign-in", len(events), 493) // 501 + 1 - 10 ended, then started
	mustBe(t, "open sessions after it", len(u.OpenSessions(at(1))), 10)
}

// TestManySignInsKeepTheStateSmall: ten thousand sign-ins, most long expired, leave the user with
// the open sessions only, and the limit bounds those.
func TestManySignInsKeepTheStateSmall(t *testing.T) {
	t.Parallel()
	u := register(t)
	for i := range 10000 {
		start := at(0).Add(time.Duration(i) * time.Second) // 900 sign-ins per session lifetime
		if _, err := u.StartSession(domain.SessionStart{SessionID: fmt.Sprint("s", i), At: start, ExpiresAt: start.Add(15 * time.Minute)}); err != nil {
			t.Fatal(err)
		}
	}
	mustBe(t, "open sessions", len(u.OpenSessions(at(0).Add(9999*time.Second))), domain.DefaultSessionLimit)
	data, err := u.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if len(data) > 12<<10 {
		t.Errorf("snapshot of %d bytes for %d open sessions", len(data), domain.DefaultSessionLimit)
	}
}

// TestSnapshotKeepsDataByteForByte: free data stored as the events hold it, spaces included, so
// that a restored user compares it (UpdateData's "unchanged") as the rehydrated one does.
func TestSnapshotKeepsDataByteForByte(t *testing.T) {
	t.Parallel()
	u, err := domain.RehydrateUser([]domain.Event{domain.UserRegistered{
		UserID: uid, Email: "alice@example.com", PasswordHash: hash1, Role: domain.RoleMember, Data: json.RawMessage(`{ "lang" : "fr" }`),
	}})
	if err != nil {
		t.Fatal(err)
	}
	data, err := u.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	restored, err := domain.RestoreUser(data, 1)
	if err != nil {
		t.Fatal(err)
	}
	mustBe(t, "data", string(restored.Data()), `{ "lang" : "fr" }`)
	_, errA := u.UpdateData(json.RawMessage(`{"lang":"fr"}`))
	_, errB := restored.UpdateData(json.RawMessage(`{"lang":"fr"}`))
	mustBe(t, "update", fmt.Sprint(errB), fmt.Sprint(errA))
}
